"""``airloop scheduler``: DAG runs created when due, triggered ones started, until stopped.

One loop: refresh the DAG folder (changed files at once, every file on the reparse
interval), record DAGs and import errors, create the runs that are due (schedules,
catch-up, ``max_active_runs``), start the runs queued by ``airloop dags trigger``,
beat the heartbeat, then wait for a file change, a stop, or the poll interval. The
poll is for what other processes write to the database (trigger, pause): they have
no other way to reach this one.

At start, runs left unfinished by a crash are resumed (see RunPlanner.restore). On
SIGTERM/SIGINT no new run starts; running task instances get the grace period to
finish, then the rest are cancelled and recorded as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from airloop.core.schedules import due_intervals
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine
from airloop.exceptions import AirloopError, RunExistsError
from airloop.service.dagfolder import DagFolder, FolderState
from airloop.settings import Settings
from airloop.store.repository import ServiceStore

log = logging.getLogger(__name__)


class SchedulerAlreadyRunning(AirloopError):
    pass


@contextlib.contextmanager
def single_instance(settings: Settings) -> Iterator[None]:
    """On SQLite, one scheduler per database file (an OS lock next to it)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        yield
        return
    path = Path(url.database).expanduser().with_suffix(".scheduler.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 - held for the scheduler's life
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SchedulerAlreadyRunning(
                f"another scheduler (pid {holder}) is running on {url.database}; "
                "SQLite allows one (use PostgreSQL for several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class SchedulerService:
    def __init__(self, settings: Settings, dags_folder: Path | None = None) -> None:
        self.settings = settings
        self.folder = DagFolder(
            dags_folder or settings.dags_folder or Path("dags"), settings.dag_parse_timeout
        )
        self.active: dict[int, ActiveRun] = {}
        self.state = FolderState()
        self.paused: dict[str, bool] = {}
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.runs_created = 0

    async def serve(self, stop: asyncio.Event) -> None:
        with single_instance(self.settings):
            async with Engine(self.settings) as engine:
                store = ServiceStore(engine.store)
                self.state, _ = await self.folder.refresh(everything=True)
                await self._sync(store)
                await self._resume_unfinished(engine, store)
                beat = await store.heartbeat(
                    None, hostname=socket.gethostname(), pid=os.getpid(), state="running"
                )
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch(stop))
                    try:
                        await self._loop(engine, store, stop, beat)
                    finally:
                        stop.set()  # ends the watcher too
                await self._drain(engine, store, beat)

    async def _loop(
        self, engine: Engine, store: ServiceStore, stop: asyncio.Event, beat: int
    ) -> None:
        while not stop.is_set():
            try:
                await self._pass(engine, store, beat)
            except Exception:
                log.exception("scheduler pass failed; trying again after the poll interval")
            self.ready.set()
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())}
            await asyncio.wait(
                waiters,
                timeout=self.settings.scheduler_poll_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _pass(self, engine: Engine, store: ServiceStore, beat: int) -> None:
        """One round: folder, DAG records, resumes, due runs, triggered runs, heartbeat."""
        loop = asyncio.get_running_loop()
        everything = loop.time() - self.folder.last_full_parse >= self.settings.dag_reparse_interval
        if everything or self.wake.is_set():
            self.wake.clear()
            self.state, changed = await self.folder.refresh(everything=everything)
            if changed or everything:
                await self._sync(store)
        else:
            self.paused = await store.paused()
        self.active = {pk: r for pk, r in self.active.items() if not r.done.done()}
        await self._resume_unfinished(engine, store)
        await self._schedule(engine, store)
        await self._start_triggered(engine, store)
        watchdog = engine.watchdog
        await store.heartbeat(
            beat,
            state="running",
            loop_lag=watchdog.last_lag if watchdog else None,
            running_tasks=sum(r.planner.active for r in self.active.values()),
            active_runs=len(self.active),
        )

    async def _watch(self, stop: asyncio.Event) -> None:
        """Wake the loop when a file in the DAG folder changes."""
        from watchfiles import awatch

        folder = self.folder.folder
        folder.mkdir(parents=True, exist_ok=True)
        async for _ in awatch(folder, stop_event=stop, debounce=200, recursive=True):
            self.wake.set()

    async def _sync(self, store: ServiceStore) -> None:
        dags = {
            dag_id: (dag.fileloc, str(dag.schedule) if dag.schedule is not None else None)
            for dag_id, dag in self.state.dags.items()
        }
        errors = [
            {
                "fileloc": path,
                "line": error.line,
                "message": str(error),
                "traceback": self.state.tracebacks.get(path),
            }
            for path, error in self.state.errors.items()
        ]
        self.paused = await store.sync_dags(dags, errors)

    def _running_of(self, dag_id: str) -> int:
        return sum(1 for r in self.active.values() if r.info.dag_id == dag_id and not r.done.done())

    async def _schedule(self, engine: Engine, store: ServiceStore) -> None:
        now = datetime.now(UTC)
        for dag_id, dag in self.state.dags.items():
            if dag.timetable is None or dag.start_date is None or self.paused.get(dag_id):
                continue
            room = dag.max_active_runs - self._running_of(dag_id)
            if room <= 0:
                continue
            after = await store.last_interval_end(dag_id)
            due = due_intervals(
                dag.timetable,
                start_date=dag.start_date,
                end_date=dag.end_date,
                after=after,
                now=now,
                catchup=dag.catchup,
                limit=room,
            )
            for interval in due:
                run_id = f"scheduled__{interval.start.isoformat()}"
                try:
                    run = await engine.start_run(
                        dag,
                        run_id=run_id,
                        run_type="scheduled",
                        logical_date=interval.start,
                        data_interval=(interval.start, interval.end),
                    )
                except (RunExistsError, IntegrityError):
                    continue  # created already (the unique constraint holds the line)
                self.active[run.run_pk] = run
                self.runs_created += 1
                log.info("created run %s of %s", run_id, dag_id)

    async def _start_triggered(self, engine: Engine, store: ServiceStore) -> None:
        """Start queued runs (trigger, backfill, clear), oldest first, within max_active_runs."""
        for row in await store.runs(state="queued", oldest_first=True):
            dag = self.state.dags.get(row.dag_id)
            if dag is None or self.paused.get(row.dag_id) or row.id in self.active:
                continue
            if self._running_of(row.dag_id) >= dag.max_active_runs:
                continue
            try:
                if await store.has_task_instances(row.id):
                    # Cleared (airloop tasks clear): carry on from what is stored.
                    await store.set_run_state(row.id, "running")
                    run = await engine.start_run(dag, run_id=row.run_id, resume=True)
                else:
                    interval = (
                        (row.data_interval_start, row.data_interval_end)
                        if row.data_interval_start is not None
                        else None
                    )
                    run = await engine.start_run(
                        dag,
                        row.params,
                        run_id=row.run_id,
                        run_type=row.run_type,
                        logical_date=row.logical_date,
                        queued_pk=row.id,
                        data_interval=interval,
                    )
            except AirloopError as exc:
                await store.fail_run(row.id, f"could not start: {exc}")
                continue
            self.active[run.run_pk] = run

    async def _resume_unfinished(self, engine: Engine, store: ServiceStore) -> None:
        """Runs left 'running' by a crash or a stop: resumed once their DAG is loaded."""
        for row in await store.runs(state="running"):
            if row.id in self.active:
                continue
            dag = self.state.dags.get(row.dag_id)
            if dag is None:
                continue  # tried again on every pass, until its file loads
            try:
                run = await engine.start_run(dag, run_id=row.run_id, resume=True)
            except AirloopError as exc:
                await store.fail_run(row.id, f"could not be resumed: {exc}")
                continue
            self.active[run.run_pk] = run

    async def _drain(self, engine: Engine, store: ServiceStore, beat: int) -> None:
        """Running task instances get the grace period to finish; the rest are cancelled
        and left for the next start (runs stay 'running': resumed or retried then)."""
        active = [r for r in self.active.values() if not r.done.done()]
        if active:
            grace = self.settings.shutdown_grace_seconds
            log.warning(
                "stopping: %d runs active; running tasks get up to %gs to finish",
                len(active),
                grace,
            )
            settled = asyncio.Event()

            def check(_: ActiveRun) -> None:
                if all(r.planner.active == 0 or r.done.done() for r in active):
                    settled.set()

            for run in active:
                run.planner.hold()  # start nothing new
                run.on_progress = check
            check(active[0])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await settled.wait()
        engine.request_shutdown("the scheduler is stopping", keep_runs=True, grace=5.0)
        await store.heartbeat(beat, state="stopped")


def serve_forever(settings: Settings, dags_folder: Path | None) -> int:
    """Run the service until SIGTERM/SIGINT (a second one exits at once)."""
    import signal

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        received: list[str] = []

        def on_signal(name: str) -> None:
            if received:
                os._exit(130 if name == "SIGINT" else 143)
            received.append(name)
            log.warning("%s received: stopping", name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        await SchedulerService(settings, dags_folder).serve(stop)

    asyncio.run(main())
    return 0


__all__ = ["SchedulerAlreadyRunning", "SchedulerService", "serve_forever"]
