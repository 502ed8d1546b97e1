"""In-process notifications of run changes: what a cross-DAG wait is woken by (ADR 0036).

Every ``Store`` has one ``RunEvents``. After each committed write that creates, queues,
clears or ends a run, or changes its task instances, the store calls ``changed`` with
the runs (primary keys) and DAGs concerned. A waiter (``TriggerDagRunOperator`` with
``wait_for_completion``, ``ExternalTaskSensor``) opens a ``Watch`` on a DAG or a run
*before* it reads the store, then awaits it: whatever is written after the read wakes
it, so no change is missed and nothing polls.

This only sees writes made through this process's store. ``scheduled_here`` says
whether waiters use them: it is set while the scheduler service of this process runs.
With one scheduler per database (ADR 0013) every run that starts, progresses or ends is
written here; with several (ADR 0041) the runs of DAGs another scheduler leases are
not, so ``recheck`` bounds each wait and the waiter reads the store again. Without a
scheduler service here a waiter polls at its own interval.

``local_store()`` is how task code finds the engine's store: the engine binds it in the
context its scheduler (and so every task instance it starts in this process) runs in,
as ``get_current_context`` is bound per task. A worker process has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from airloop.runtime import current_resources

if TYPE_CHECKING:
    from airloop.store.runs import Store

T = TypeVar("T")

#: Shared reads of one store running at once: waiters never crowd out the
#: scheduler's own use of the connection pool.
SHARED_READ_SLOTS = 4

_local_store: contextvars.ContextVar[tuple[Store, asyncio.AbstractEventLoop] | None] = (
    contextvars.ContextVar("airloop_local_store", default=None)
)


def local_store() -> Store | None:
    """The store of the engine running this code, when this code runs on the engine's
    event loop (None elsewhere: another loop cannot use it)."""
    bound = _local_store.get()
    if bound is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return bound[0] if bound[1] is loop else None


def bind_local_store(store: Store) -> None:
    """Make ``store`` what ``local_store()`` returns in the current context, on the
    running loop (the engine calls it in the context its scheduler task runs in)."""
    _local_store.set((store, asyncio.get_running_loop()))


@contextlib.asynccontextmanager
async def task_store() -> AsyncIterator[tuple[Store, bool]]:
    """The store task code reads and queues runs with, and whether its events see every
    run change (True: wait on ``store.events``; False: poll).

    On the engine's loop: the engine's store. Anywhere else (a sync task's own loop in
    the thread executor, a process or Dask worker) a store of its own, opened from the
    settings for the duration of the block, whose events see nothing: poll it.
    """
    bound = _local_store.get()
    if bound is not None and bound[1] is asyncio.get_running_loop():
        yield bound[0], bound[0].events.scheduled_here
        return
    resources = current_resources.get()
    if resources is None:
        raise RuntimeError("no airloop engine is running this code (task_store() is for tasks)")
    from airloop.store.runs import Store

    store = await Store.open(resources.settings.database_url, pool_size=1, max_overflow=2)
    try:
        yield store, False
    finally:
        await store.close()


class Watch:
    """A subscription to changes of some DAGs' runs and some runs: ``await wait()``.

    Use it as a context manager (it unsubscribes on exit). A change made between two
    waits is not lost: the watch stays set until the next ``wait`` returns.
    """

    def __init__(self, events: RunEvents) -> None:
        self._events = events
        self._set = asyncio.Event()
        self.dag_ids: set[str] = set()
        self.run_pks: set[int] = set()
        #: Per run: only changes of these tasks (or of the run itself) fire the watch.
        self.task_ids: dict[int, frozenset[str]] = {}

    def add_dag(self, dag_id: str) -> None:
        self.dag_ids.add(dag_id)
        self._events._by_dag.setdefault(dag_id, set()).add(self)

    def add_run(self, run_pk: int, task_ids: Iterable[str] | None = None) -> None:
        """Watch a run: its state, and its task instances (only ``task_ids``' if given)."""
        self.run_pks.add(run_pk)
        if task_ids is not None:
            self.task_ids[run_pk] = frozenset(task_ids)
        self._events._by_run.setdefault(run_pk, set()).add(self)

    def _concerned(self, run_pk: int, tasks: set[str] | None) -> bool:
        wanted = self.task_ids.get(run_pk)
        return wanted is None or tasks is None or not wanted.isdisjoint(tasks)

    def fire(self) -> None:
        self._set.set()

    async def wait(self) -> None:
        """Until something watched changed since the previous wait returned -- or, with
        several schedulers (``RunEvents.recheck``), at most that long: a change another
        scheduler wrote is then seen by the caller's next read."""
        recheck = self._events.recheck
        if recheck is None:
            await self._set.wait()
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(recheck):
                    await self._set.wait()
        self._set.clear()

    def close(self) -> None:
        for dag_id in self.dag_ids:
            watchers = self._events._by_dag.get(dag_id)
            if watchers is not None:
                watchers.discard(self)
                if not watchers:
                    del self._events._by_dag[dag_id]
        for run_pk in self.run_pks:
            watchers = self._events._by_run.get(run_pk)
            if watchers is not None:
                watchers.discard(self)
                if not watchers:
                    del self._events._by_run[run_pk]
        self.dag_ids.clear()
        self.run_pks.clear()
        self.task_ids.clear()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RunEvents:
    """The changes written through one store, for waiters in this process."""

    def __init__(self) -> None:
        self._by_dag: dict[str, set[Watch]] = {}
        self._by_run: dict[int, set[Watch]] = {}
        #: True while this process's scheduler service drives runs: a waiter waits on
        #: these events instead of polling at its own interval.
        self.scheduled_here = False
        #: With several schedulers (ADR 0041) other processes write run changes too: a
        #: wait on these events also returns after this many seconds, so the waiter
        #: reads the store again (None: one scheduler, every change is announced here).
        self.recheck: float | None = None
        #: Set when a run is queued (or cleared) through this store: wakes the
        #: scheduler service of this process at once instead of at its next poll.
        self.queued = asyncio.Event()
        #: Counts ``changed`` calls: a read started at generation g has seen every
        #: change announced up to g (``SharedReads`` joins on it).
        self.generation = 0
        self.reads = SharedReads(self)

    def watch(
        self,
        *,
        dag_id: str | None = None,
        run_pk: int | None = None,
        task_ids: Iterable[str] | None = None,
    ) -> Watch:
        """A watch on a DAG's runs (created, queued) and/or one run (see ``add_run``;
        ``task_ids=()``: the run's state only)."""
        watch = Watch(self)
        if dag_id is not None:
            watch.add_dag(dag_id)
        if run_pk is not None:
            watch.add_run(run_pk, task_ids)
        return watch

    @property
    def active(self) -> bool:
        """Is anyone watching? (Writers skip collecting what changed when not.)"""
        return bool(self._by_dag or self._by_run)

    @property
    def watchers(self) -> int:
        """Open watches (for tests: a waiter that returned has unsubscribed)."""
        return len({w for ws in (*self._by_dag.values(), *self._by_run.values()) for w in ws})

    def changed(
        self,
        *,
        run_pks: Iterable[int] = (),
        dag_ids: Iterable[str] = (),
        tasks: dict[int, set[str]] | None = None,
    ) -> None:
        """Called by the store after a committed write concerning these runs and DAGs.

        ``run_pks``: runs changed as a whole (created, queued, cleared, ended): every
        watch on them fires. ``tasks``: runs whose task instances of these ids changed:
        a watch limited to other tasks of the run does not fire.
        """
        self.generation += 1
        if not self.active:
            return  # the scheduler's hot path when nobody waits
        for run_pk in run_pks:
            for watch in self._by_run.get(run_pk, ()):
                watch.fire()
        for run_pk, changed in (tasks or {}).items():
            for watch in self._by_run.get(run_pk, ()):
                if watch._concerned(run_pk, changed):
                    watch.fire()
        for dag_id in dag_ids:
            for watch in self._by_dag.get(dag_id, ()):
                watch.fire()

    def run_queued(self, dag_id: str, run_pk: int | None = None) -> None:
        self.queued.set()
        self.changed(run_pks=() if run_pk is None else (run_pk,), dag_ids=(dag_id,))


class SharedReads:
    """Identical reads by many waiters, made once (ADR 0036).

    Thousands of ``ExternalTaskSensor``s on one DAG are woken by the same change and
    would each ask the store the same question at once, exhausting its connection
    pool. ``read(key, fetch)`` joins a read of the same key already in flight when
    that read began after every change the caller knows of (its generation is at
    least the current one), so the answer is as fresh as a read of its own; otherwise
    it starts one. At most ``SHARED_READ_SLOTS`` reads run at once. Reads are tasks
    owned here (a caller cancelled while waiting leaves the others their answer);
    ``aclose`` cancels those still running.
    """

    def __init__(self, events: RunEvents) -> None:
        self._events = events
        self._inflight: dict[Hashable, tuple[int, asyncio.Task[Any]]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.started = 0  # reads made (for tests and benchmarks)

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        need = self._events.generation
        entry = self._inflight.get(key)
        if entry is None or entry[0] < need:
            task = asyncio.get_running_loop().create_task(self._run(fetch))
            entry = (need, task)
            self._inflight[key] = entry
            task.add_done_callback(functools.partial(self._done, key))
            self.started += 1
        result: T = await asyncio.shield(entry[1])
        return result

    async def _run(self, fetch: Callable[[], Awaitable[T]]) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(SHARED_READ_SLOTS)
        async with self._slots:
            return await fetch()

    def _done(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        entry = self._inflight.get(key)
        if entry is not None and entry[1] is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure reaches the callers, not the loop's log

    async def aclose(self) -> None:
        tasks = [task for _, task in self._inflight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["RunEvents", "SharedReads", "Watch", "bind_local_store", "local_store", "task_store"]
