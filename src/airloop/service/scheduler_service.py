"""``airloop scheduler``: DAG runs created when due, triggered ones started, until stopped.

One loop: refresh the DAG folder (changed files at once, every file on the reparse
interval), record DAGs and import errors, create the runs that are due (schedules,
catch-up, ``max_active_runs``), start the runs queued by ``airloop dags trigger``,
read the pools' sizes (table ``slot_pool``, edited through the API), beat the
heartbeat, then wait for a file change, a stop, a change another process notified
(PostgreSQL LISTEN/NOTIFY: trigger, pause, clear, mark, pool edit), or the poll
interval. The poll is how changes reach it on MySQL/MariaDB and SQLite (no LISTEN).

At start, runs left unfinished by a crash are resumed (see RunPlanner.restore). On
SIGTERM/SIGINT no new run starts; running task instances get the grace period to
finish, then the rest are cancelled and recorded as interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from airloop.core.plan import PlanningError
from airloop.core.pools import PoolError
from airloop.core.schedules import due_intervals
from airloop.core.states import DagRunState
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.engine.active_run import ActiveRun, RunResult
from airloop.engine.engine import Engine
from airloop.exceptions import (
    AirloopError,
    DatabaseError,
    LeaseLostError,
    RunExistsError,
    TransientDatabaseError,
)
from airloop.runtime import in_thread
from airloop.service.dagfolder import DagFolder, FolderState
from airloop.service.lease_keeper import LeaseKeeper
from airloop.service.pool_share import PoolSharer
from airloop.settings import Settings
from airloop.store.leases import LeaseStore, server_supports_leases
from airloop.store.listener import ChangeListener, listen_for_changes
from airloop.store.pools import pool_sizes, seed_pools
from airloop.store.records import ImportErrorRow
from airloop.store.run_changes import mark_run
from airloop.store.run_requests import finish_request, pending_requests
from airloop.store.runs import Store
from airloop.store.scheduler_lock import (
    DatabaseLock,
    SchedulerAlreadyRunning,
    scheduler_lock,
    single_instance,
)
from airloop.store.service import ServiceStore

log = logging.getLogger(__name__)

#: Why a run cannot start (it is failed with the message): a pool it names is gone, a
#: DAG the planner refuses, or any airloop error.
CANNOT_START = (AirloopError, PlanningError, PoolError)


def folder_of(settings: Settings, dags_folder: Path | None) -> DagFolder:
    """The DAG folder as the settings describe it."""
    return DagFolder(
        dags_folder or settings.dags_folder or Path("dags"),
        settings.dag_parse_timeout,
        processes=settings.parser_processes,
        memory_limit_mb=settings.dag_parse_memory_limit,
        reparse_interval=settings.dag_reparse_interval,
    )


class SchedulerService:
    def __init__(self, settings: Settings, dags_folder: Path | None = None) -> None:
        self.settings = settings
        self.folder = folder_of(settings, dags_folder)
        self.active: dict[int, ActiveRun] = {}
        self.state = FolderState()
        self.paused: dict[str, bool] = {}
        self.ready = asyncio.Event()
        #: Set when another scheduler took the database lock: this one stopped.
        self.lost_lock = False
        self._lock: DatabaseLock | None = None
        #: The DAG leases (several schedulers, ADR 0041); None under the one lock.
        self._keeper: LeaseKeeper | None = None
        self._lock_missing = False
        self._stop = asyncio.Event()
        self._folder_loaded = False
        #: Set when a run ends: a @continuous DAG's next run (or a queued one waiting
        #: for max_active_runs) is created at once, not at the next poll.
        self._run_ended = asyncio.Event()
        self.runs_created = 0
        #: The engine while serving (None before and after).
        self.engine: Engine | None = None
        #: id(dag) -> (the DAG, its serialized text and hash): serialized once per parse.
        self._serialized_cache: dict[int, tuple[object, tuple[str, str]]] = {}
        #: Runs aborted to apply a mark asked through the API, marked once ended.
        self._aborting: set[int] = set()
        #: Changes other processes notify (PostgreSQL LISTEN) while serving.
        self.changes: ChangeListener | None = None

    async def serve(self, stop: asyncio.Event) -> None:
        self._stop = stop
        why = await self._why_single()
        if why is None:
            await self._serve_ha(stop)
            return
        log.info("one scheduler per database: %s", why)
        await self._serve_single(stop)

    async def _why_single(self) -> str | None:
        """None when several schedulers can share this database (ADR 0041), else why
        this one runs alone under the one-scheduler lock (ADR 0013)."""
        if self.settings.scheduler_ha == "off":
            return "scheduler_ha is off"
        store = await Store.open(self.settings.database_url, pool_size=1, max_overflow=0)
        try:
            return await server_supports_leases(store)
        finally:
            await store.close()

    async def _serve_ha(self, stop: asyncio.Event) -> None:
        """Several schedulers: this one drives the DAGs it leases (ADR 0041)."""
        await _refuse_beside_single(self.settings.database_url)
        keeper = LeaseKeeper(
            self.settings, on_lost=self._lost, hold=self._hold_starts, stats=self._stats
        )
        self._keeper = keeper
        try:
            async with (
                Engine(self.settings) as engine,
                listen_for_changes(self.settings.database_url) as self.changes,
            ):
                self.engine = engine
                store = ServiceStore(engine.store)
                engine.store.fence = await keeper.start(
                    hostname=socket.gethostname(), pid=os.getpid()
                )
                await seed_pools(engine.store, self.settings.pools)
                engine.resize_pools(await pool_sizes(engine.store))
                # Cross-DAG waits are woken by this process's writes, and read the
                # store again at the poll interval for what other schedulers wrote.
                engine.store.events.recheck = self.settings.scheduler_poll_interval
                engine.store.events.scheduled_here = True
                # This scheduler's share of each pool, before any run starts here.
                assert keeper.scheduler_id is not None
                sharer = PoolSharer(engine, keeper.scheduler_id)
                await sharer.share()
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._watch(stop))
                        parser = group.create_task(self.folder.serve())
                        group.create_task(keeper.serve(stop), name="airloop-leases")
                        group.create_task(self._share_pools(sharer, stop), name="airloop-pools")
                        try:
                            await self._loop(engine, store, stop, None)
                        finally:
                            stop.set()
                            parser.cancel()
                    await self._drain(engine, store, None)
                    await sharer.release()
                finally:
                    engine.store.events.scheduled_here = False
                    engine.store.events.recheck = None
                    self.engine = None
        finally:
            # After the engine wrote its last change: the others take over at once.
            await keeper.stop()
            self._keeper = None

    async def _share_pools(self, sharer: PoolSharer, stop: asyncio.Event) -> None:
        """Take this scheduler's pool shares again every renewal interval, and early
        when a pool's next ready task instance does not fit (ADR 0041)."""
        loop = asyncio.get_running_loop()
        interval = self.settings.scheduler_lease_renew_interval
        last = loop.time()
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.1):
                    await stop.wait()
            except TimeoutError:
                pass
            if stop.is_set() or not (loop.time() - last >= interval or sharer.needs_more()):
                continue
            last = loop.time()
            try:
                await sharer.share()
            except DatabaseError as exc:
                # The engine keeps shares no larger than the database gives it.
                log.warning("could not take this scheduler's pool shares: %s", exc)

    def _owns(self, dag_id: str) -> bool:
        """Does this scheduler drive ``dag_id`` (always, with one scheduler)?"""
        keeper = self._keeper
        return keeper is None or dag_id in keeper.held

    def _lost(self, dag_ids: set[str], why: str) -> None:
        """DAGs whose lease this scheduler no longer holds: let their runs go."""
        run_pks = {pk for pk, run in self.active.items() if run.info.dag_id in dag_ids}
        log.error(
            "lost the lease of %d DAG(s) (%s): letting %d run(s) go: %s",
            len(dag_ids),
            why,
            len(run_pks),
            ", ".join(sorted(dag_ids)[:10]) + (" ..." if len(dag_ids) > 10 else ""),
        )
        if self.engine is not None and run_pks:
            self.engine.scheduler.drop_runs(run_pks, f"DAG lease lost: {why}")
        for pk in run_pks:
            self.active.pop(pk, None)
            self._aborting.discard(pk)

    def _hold_starts(self, hold: bool) -> None:
        if self.engine is None:
            return
        if hold:
            self.engine.scheduler.hold_starts()
        else:
            self.engine.scheduler.release_starts()

    def _stats(self) -> dict[str, object]:
        watchdog = self.engine.watchdog if self.engine is not None else None
        return {
            "loop_lag": watchdog.last_lag if watchdog else None,
            "running_tasks": sum(r.active for r in self.active.values()),
            "active_runs": len(self.active),
        }

    async def _serve_single(self, stop: asyncio.Event) -> None:
        async with (
            scheduler_lock(self.settings.database_url) as self._lock,
            Engine(self.settings) as engine,
            listen_for_changes(self.settings.database_url) as self.changes,
        ):
            self.engine = engine
            store = ServiceStore(engine.store)
            if self._lock is not None and await LeaseStore(engine.store).live_schedulers():
                raise SchedulerAlreadyRunning(
                    "schedulers with leases (scheduler_ha = 'auto') run on this database: "
                    "give every scheduler of a database the same scheduler_ha"
                )
            # Pools live in the database (ADR 0039): the settings' seed the missing ones.
            await seed_pools(engine.store, self.settings.pools)
            engine.resize_pools(await pool_sizes(engine.store))
            beat = await store.heartbeat(
                None, hostname=socket.gethostname(), pid=os.getpid(), state="running"
            )
            # This process writes every run change now: cross-DAG waits in it are
            # woken by the store's events instead of polling (ADR 0036). (Not with
            # several schedulers: the others write run changes too.)
            store.events.scheduled_here = True
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch(stop))
                    # Parsing is a task of its own: a pass never waits for a DAG file.
                    parser = group.create_task(self.folder.serve())
                    try:
                        await self._loop(engine, store, stop, beat)
                    finally:
                        stop.set()  # ends the watcher too
                        parser.cancel()  # kills and reaps the parser processes
                await self._drain(engine, store, beat)
            finally:
                store.events.scheduled_here = False
                self.engine = None

    async def _loop(
        self, engine: Engine, store: ServiceStore, stop: asyncio.Event, beat: int | None
    ) -> None:
        while not stop.is_set():
            try:
                await self._pass(engine, store, beat)
            except Exception:
                log.exception("scheduler pass failed; trying again after the poll interval")
            if self._folder_loaded:
                self.ready.set()
            waiters = {
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.folder.updated.wait()),
                asyncio.ensure_future(self._run_ended.wait()),
                # A run queued in this process (TriggerDagRunOperator): start it now.
                asyncio.ensure_future(store.events.queued.wait()),
            }
            if self.changes is not None:
                # Another process wrote a change (trigger, pause, clear, mark, pool edit)
                # and notified it (PostgreSQL): look now, not at the poll.
                waiters.add(asyncio.ensure_future(self.changes.wait()))
            await asyncio.wait(
                waiters,
                timeout=self.settings.scheduler_poll_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _pass(self, engine: Engine, store: ServiceStore, beat: int | None) -> None:
        """One round: DAGs parsed since the last, DAG records, resumes, due runs,
        triggered runs, heartbeat. Never waits for a parse: it takes what is parsed."""
        self._run_ended.clear()
        store.events.queued.clear()
        if not await self._check_lock(engine):
            return  # nothing starts without the lock (and no heartbeat: not alive)
        # Read before the state is taken: the folder may finish its first round while
        # this pass runs, and `ready` must not be set before those DAGs are recorded.
        loaded = self.folder.loaded.is_set()
        fresh = self.folder.updated.is_set()
        if fresh:
            self.folder.updated.clear()
            self.state = self.folder.state()
            # Each file's result is recorded as it comes: a file whose parse hangs
            # holds back neither the other files' DAGs nor their import errors.
            await self._sync(store)
        else:
            self.paused = await store.paused()
        if loaded:
            self._folder_loaded = True
        self.active = {pk: r for pk, r in self.active.items() if not r.done.done()}
        if self._keeper is not None:
            # Several schedulers: take a fair share of the DAGs parsed here (those of
            # a scheduler whose lease expired among them), give idle ones back.
            await self._keeper.balance(sorted(self.state.dags), lambda d: self._running_of(d) > 0)
        # Pools edited through the API since the last pass: resized live.
        engine.resize_pools(await pool_sizes(engine.store))
        await self._resume_unfinished(engine, store)
        await self._apply_requests(engine, store)
        await self._schedule(engine, store)
        await self._start_triggered(engine, store)
        if beat is None:
            return  # several schedulers: the lease keeper beats (with the same figures)
        watchdog = engine.watchdog
        await store.heartbeat(
            beat,
            state="running",
            loop_lag=watchdog.last_lag if watchdog else None,
            running_tasks=sum(r.active for r in self.active.values()),
            active_runs=len(self.active),
        )

    async def _check_lock(self, engine: Engine) -> bool:
        """Is the database lock still ours? If its connection ended: hold every run
        (start nothing), try to take it again; if another scheduler has it, stop."""
        lock = self._lock
        if lock is None or await lock.held():
            return True
        if not self._lock_missing:
            self._lock_missing = True
            log.error("lost the scheduler lock (its database connection ended): starting nothing")
            engine.scheduler.hold_starts()
            engine.store.events.scheduled_here = False  # another may write runs now
        try:
            got = await lock.acquire()
        except Exception as exc:  # noqa: BLE001 - unreachable: tried again next heartbeat
            log.warning("could not take the scheduler lock again (%s); trying again", exc)
            return False
        if not got:
            log.error("another scheduler holds the lock now: this one stops at once")
            self.lost_lock = True
            self._stop.set()
            return False
        log.warning("took the scheduler lock again: carrying on")
        self._lock_missing = False
        engine.store.events.scheduled_here = True
        engine.scheduler.release_starts()
        return True

    async def _watch(self, stop: asyncio.Event) -> None:
        """Wake the loop when a file in the DAG folder changes."""
        from watchfiles import awatch

        folder = self.folder.folder
        await in_thread(functools.partial(folder.mkdir, parents=True, exist_ok=True))
        async for _ in awatch(folder, stop_event=stop, debounce=200, recursive=True):
            self.folder.poke()

    async def _sync(self, store: ServiceStore) -> None:
        dags = {
            dag_id: (dag.fileloc, str(dag.schedule) if dag.schedule is not None else None)
            for dag_id, dag in self.state.dags.items()
        }
        errors = [
            ImportErrorRow(path, error.line, str(error), self.state.tracebacks.get(path))
            for path, error in self.state.errors.items()
        ]
        self.paused = await store.sync_dags(dags, errors, self._serialized())

    def _serialized(self) -> dict[str, tuple[str, str]]:
        """Each DAG's structure for the API server (JSON text, hash), computed once
        per parsed DAG object: a DAG reparsed is a new object."""
        out: dict[str, tuple[str, str]] = {}
        cache: dict[int, tuple[object, tuple[str, str]]] = {}
        for dag_id, dag in self.state.dags.items():
            kept = self._serialized_cache.get(id(dag))
            fresh = kept is None or kept[0] is not dag
            entry = dumps(serialize_dag(dag)) if fresh or kept is None else kept[1]
            cache[id(dag)] = (dag, entry)
            out[dag_id] = entry
        self._serialized_cache = cache
        return out

    def _running_of(self, dag_id: str) -> int:
        return sum(1 for r in self.active.values() if r.info.dag_id == dag_id and not r.done.done())

    async def _schedule(self, engine: Engine, store: ServiceStore) -> None:
        now = datetime.now(UTC)
        for dag_id, dag in self.state.dags.items():
            if dag.timetable is None or dag.start_date is None or self.paused.get(dag_id):
                continue
            if not self._owns(dag_id):
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
                except RunExistsError:
                    continue  # created already (the unique constraint holds the line)
                except LeaseLostError:
                    break  # another scheduler holds the DAG now
                except TransientDatabaseError as exc:
                    # A deadlock or a lost connection: nothing was created; next pass.
                    log.warning("DAG %s: run %s not created yet: %s", dag_id, run_id, exc)
                    break
                except (PlanningError, PoolError) as exc:
                    # Not created (a pool deleted through the API...): said each pass.
                    log.warning("DAG %s: run %s cannot start: %s", dag_id, run_id, exc)
                    break
                self.runs_created += 1
                log.info("created run %s of %s", run_id, dag_id)
                self._track(run)

    async def _start_triggered(self, engine: Engine, store: ServiceStore) -> None:
        """Start queued runs (trigger, backfill, clear), oldest first, within max_active_runs."""
        for row in await store.runs(state=DagRunState.QUEUED, oldest_first=True):
            dag = self.state.dags.get(row.dag_id)
            if dag is None or self.paused.get(row.dag_id) or row.id in self.active:
                continue
            if not self._owns(row.dag_id):
                continue
            if self._running_of(row.dag_id) >= dag.max_active_runs:
                continue
            try:
                if await store.has_task_instances(row.id):
                    # Cleared (airloop tasks clear): carry on from what is stored.
                    await store.set_run_state(row.id, DagRunState.RUNNING)
                    run = await engine.start_run(dag, run_id=row.run_id, resume=True)
                else:
                    run = await engine.start_run(
                        dag,
                        row.params,
                        run_id=row.run_id,
                        run_type=row.run_type,
                        logical_date=row.logical_date,
                        queued_pk=row.id,
                        data_interval=row.data_interval,
                    )
            except LeaseLostError:
                continue  # another scheduler holds the DAG now: it starts the run
            except TransientDatabaseError as exc:
                # A deadlock or a lost connection: nothing changed; the next pass tries
                # again (a run is never failed for the database's own trouble).
                log.warning(
                    "triggered run %s of %s not started yet: %s", row.run_id, row.dag_id, exc
                )
                continue
            except CANNOT_START as exc:
                log.warning(
                    "triggered run %s of %s could not start: %s", row.run_id, row.dag_id, exc
                )
                await store.fail_run(row.id, f"could not start: {exc}")
                continue
            log.info(
                "starting triggered run %s of %s (queued by the CLI or a backfill)",
                row.run_id,
                row.dag_id,
            )
            self._track(run)

    async def _apply_requests(self, engine: Engine, store: ServiceStore) -> None:
        """Marks asked through the API for runs in flight (ADR 0039). A run this
        service drives is aborted first (what runs is cancelled, nothing more starts)
        and marked once it has ended; a run it does not drive (queued, or left running
        with its DAG not loaded) is marked at once: this pass is the only one that
        starts runs, so none starts under the mark."""
        for request in await pending_requests(engine.store):
            state = DagRunState.FAILED if request.action == "mark_failed" else DagRunState.SUCCESS
            run = self.active.get(request.run_pk)
            if run is not None and not run.done.done():
                if request.run_pk not in self._aborting:
                    self._aborting.add(request.run_pk)
                    log.info(
                        "run %s of %s: marked %s by %s; stopping it",
                        run.info.run_id,
                        run.info.dag_id,
                        state.value,
                        request.requested_by,
                    )
                    engine.scheduler.abort_run(
                        run, f"marked {state.value} by {request.requested_by}"
                    )
                continue  # marked once it has ended (a later pass)
            row = await engine.store.get_run(request.run_pk)
            if row is not None and not self._owns(row.dag_id):
                continue  # the scheduler that leases the DAG applies it
            self._aborting.discard(request.run_pk)
            if row is None:
                await finish_request(engine.store, request.id, "the run no longer exists")
                continue
            await mark_run(engine.store, row.id, state)
            await finish_request(engine.store, request.id, f"marked {state.value}")

    async def _resume_unfinished(self, engine: Engine, store: ServiceStore) -> None:
        """Runs left 'running' by a crash or a stop: resumed once their DAG is loaded."""
        for row in await store.runs(state=DagRunState.RUNNING):
            if row.id in self.active or not self._owns(row.dag_id):
                continue
            dag = self.state.dags.get(row.dag_id)
            if dag is None:
                continue  # tried again on every pass, until its file loads
            try:
                run = await engine.start_run(dag, run_id=row.run_id, resume=True)
            except LeaseLostError:
                continue
            except TransientDatabaseError as exc:
                log.warning("run %s of %s not resumed yet: %s", row.run_id, row.dag_id, exc)
                continue
            except CANNOT_START as exc:
                log.warning("run %s of %s could not be resumed: %s", row.run_id, row.dag_id, exc)
                await store.fail_run(row.id, f"could not be resumed: {exc}")
                continue
            log.info("resumed unfinished run %s of %s", row.run_id, row.dag_id)
            self._track(run)

    def _track(self, run: ActiveRun) -> None:
        """Hold on to a run in flight, and say how it ended."""
        self.active[run.run_pk] = run
        run.done.add_done_callback(_log_result)
        run.done.add_done_callback(lambda _: self._run_ended.set())

    async def _drain(self, engine: Engine, store: ServiceStore, beat: int | None) -> None:
        """Running task instances get the grace period to finish; the rest are cancelled
        and left for the next start (runs stay 'running': resumed or retried then)."""
        active = [r for r in self.active.values() if not r.done.done()]
        # Another scheduler has the lock and resumes these runs: stop at once.
        grace = 0.0 if self.lost_lock else self.settings.shutdown_grace_seconds
        if active and grace > 0:
            log.warning(
                "stopping: %d runs active; running tasks get up to %gs to finish",
                len(active),
                grace,
            )
            await engine.scheduler.drain(grace)
        engine.request_shutdown("the scheduler is stopping", keep_runs=True, grace=5.0)
        if beat is not None:
            await store.heartbeat(beat, state="stopped")


async def _refuse_beside_single(url: str) -> None:
    """A scheduler under the one-scheduler lock (``scheduler_ha = "off"``) runs here:
    refuse to start beside it (all schedulers of a database use the same mode)."""
    lock = DatabaseLock(url)
    try:
        # Another scheduler with leases takes the lock for a moment as it starts too:
        # only a lock held through several tries is a one-lock scheduler's.
        for attempt in range(5):
            if await lock.acquire():
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        raise SchedulerAlreadyRunning(
            f"a scheduler with scheduler_ha = 'off' is running on database "
            f"{lock.database!r}: stop it, or give every scheduler the same scheduler_ha"
        )
    finally:
        await lock.close()


def _log_result(done: asyncio.Future[RunResult]) -> None:
    if done.cancelled():
        return
    error = done.exception()
    if error is not None:
        log.error("a run ended without a result: %s", error)
        return
    result = done.result()
    if result.state not in (DagRunState.SUCCESS, DagRunState.FAILED):
        log.info(
            "run %s of %s left for the next start (%s)",
            result.run_id,
            result.dag_id,
            result.interrupted,
        )
        return
    log.info(
        "run %s of %s finished: %s in %.1fs%s",
        result.run_id,
        result.dag_id,
        result.state.value,
        result.duration,
        f" ({result.interrupted})" if result.interrupted else "",
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM/SIGINT on the running loop; a second signal
    exits at once (130/143)."""
    import signal

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
    return stop


def serve_forever(settings: Settings, dags_folder: Path | None) -> int:
    """Run the service until SIGTERM/SIGINT (a second one exits at once)."""

    async def main() -> None:
        await service.serve(stop_on_signals())

    service = SchedulerService(settings, dags_folder)
    asyncio.run(main())
    return 1 if service.lost_lock else 0


__all__ = ["SchedulerAlreadyRunning", "SchedulerService", "serve_forever", "single_instance"]
