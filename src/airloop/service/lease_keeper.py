"""One scheduler's DAG leases (ADR 0041): registered, claimed up to a fair share,
renewed, let go before they can expire, released at a graceful stop.

The keeper works on a store of its own (two connections), so a renewal never waits
behind the scheduler's batch writes for a pooled connection. Renewal failures are
measured on this process's monotonic clock from the moment the last successful renewal
was sent: after half the lease no task instance starts here, after two thirds
every run is let go (their task instances cancelled as a handover), so this scheduler
has stopped before any other may take over, whatever the database's clock says.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from airloop.exceptions import DatabaseError
from airloop.settings import Settings
from airloop.store.fencing import Fence
from airloop.store.leases import LeaseStore, Renewal
from airloop.store.runs import Store

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Registry row, claims, renewals and releases of one scheduler."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_lost: Callable[[set[str], str], None],
        hold: Callable[[bool], None],
        stats: Callable[[], Mapping[str, Any]],
    ) -> None:
        self.settings = settings
        self.ttl = settings.scheduler_lease_ttl
        self.interval = settings.scheduler_lease_renew_interval
        #: Told of DAGs this scheduler no longer holds (and why): drop their runs.
        self._on_lost = on_lost
        #: hold(True): start nothing; hold(False): start again.
        self._hold = hold
        self._stats = stats
        self._store: Store | None = None
        self._leases: LeaseStore | None = None
        self.fence: Fence | None = None
        self.scheduler_id: int | None = None
        self._holding = False
        #: Renewals that failed in a row (for status and logs).
        self.failures = 0

    @property
    def held(self) -> set[str]:
        return set(self.fence.tokens) if self.fence is not None else set()

    async def start(self, *, hostname: str, pid: int) -> Fence:
        """Open the keeper's store and register; returns the fence for the writer."""
        self._store = await Store.open(
            self.settings.database_url, auto_migrate=False, pool_size=2, max_overflow=0
        )
        self._leases = LeaseStore(self._store)
        self.scheduler_id = await self._leases.register(
            hostname=hostname, pid=pid, ttl=self.ttl, mode="ha"
        )
        self.fence = Fence(self.scheduler_id)
        self.fence.on_lost = lambda dags: self._lost(dags, "a write found its lease moved")
        log.info(
            "scheduler %d registered (leases of %gs renewed every %gs)",
            self.scheduler_id,
            self.ttl,
            self.interval,
        )
        return self.fence

    def _lost(self, dag_ids: set[str], why: str) -> None:
        assert self.fence is not None
        dag_ids = dag_ids & self.held
        if not dag_ids:
            return
        self.fence.forget(dag_ids)
        self._on_lost(dag_ids, why)

    # -- balance (each pass of the service) ------------------------------------------

    async def balance(self, parsed: Collection[str], busy: Callable[[str], bool]) -> set[str]:
        """Claim free or expired DAGs of ``parsed`` up to this scheduler's fair share;
        above it (a scheduler joined), release idle ones. Returns the DAGs claimed now."""
        assert self._leases is not None and self.fence is not None
        assert self.scheduler_id is not None
        if self._holding or not parsed:
            return set()
        held = self.held
        # A DAG that no longer loads here (a file that broke, a parse that timed out):
        # let another scheduler, which may load it, have it once it is idle.
        unloadable = sorted(d for d in held - set(parsed) if not busy(d))
        if unloadable:
            await self._leases.release(self.scheduler_id, unloadable)
            self.fence.forget(unloadable)
            held = self.held
        live = max(1, await self._leases.live_schedulers())
        fair = math.ceil(len(parsed) / live)
        if len(held) < fair:
            want = [d for d in parsed if d not in held]
            got = await self._leases.claim(self.scheduler_id, want, fair - len(held), self.ttl)
            if got:
                self.fence.hold(got)
                log.info(
                    "claimed %d DAG(s) (%d live schedulers, fair share %d): %s",
                    len(got),
                    live,
                    fair,
                    ", ".join(sorted(got)[:10]) + (" ..." if len(got) > 10 else ""),
                )
            return set(got)
        if len(held) > fair and live > 1:
            idle = sorted(d for d in held if not busy(d))[: len(held) - fair]
            if idle:
                await self._leases.release(self.scheduler_id, idle)
                self.fence.forget(idle)
                log.info("released %d idle DAG(s) for the other schedulers", len(idle))
        return set()

    # -- renewal (a task of its own) -------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Renew every ``interval`` until ``stop``; stop starting and then let go of
        every run when no renewal succeeded for half, then two thirds, of the lease
        (a renewal still in flight counts as failed only once those points pass: a
        slow database delays starts before it costs a running task)."""
        assert self.fence is not None
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while not stop.is_set():
            sent = loop.time()
            renewal = asyncio.ensure_future(self._renew())
            # Hold at half, drop at two thirds of the lease since the last renewal that
            # went through (the next one is sent a renewal interval, at most a third of
            # the lease, after it); an attempt itself gets at least a third of the lease.
            try:
                if not await self._wait(renewal, last_sent + self.ttl / 2):
                    self._failing(loop.time() - last_sent, TimeoutError("no answer yet"))
                    if not await self._wait(renewal, last_sent + self.ttl * 2 / 3):
                        self._failing(loop.time() - last_sent, TimeoutError("no answer"))
                        if not await self._wait(renewal, sent + self.ttl / 3):
                            renewal.cancel()
                await asyncio.gather(renewal, return_exceptions=True)
            finally:
                if not renewal.done():
                    renewal.cancel()
                    await asyncio.gather(renewal, return_exceptions=True)
            if renewal.cancelled():
                # Counted above. A statement cut off mid-way leaves its connection
                # unusable: the next renewal starts on fresh connections (the old ones
                # are dropped, not closed: closing a dead socket can hang too).
                if self._store is not None:
                    await self._store.engine.dispose(close=False)
            elif (exc := renewal.exception()) is not None:
                if not isinstance(exc, DatabaseError):
                    raise exc
                self._failing(loop.time() - last_sent, exc)
            else:
                last_sent = sent
                self.failures = 0
                if self._holding:
                    log.warning("lease renewal works again: starting task instances again")
                    self._holding = False
                    self._hold(False)
                lost = renewal.result().lost
                if lost:
                    self._lost(lost, "its lease was taken over")
            # A steady cadence from when this renewal was sent, however long it took.
            try:
                async with asyncio.timeout(max(0.0, sent + self.interval - loop.time())):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _renew(self) -> Renewal:
        assert self._leases is not None and self.fence is not None
        assert self.scheduler_id is not None
        return await self._leases.renew(
            self.scheduler_id, dict(self.fence.tokens), self.ttl, self._stats()
        )

    @staticmethod
    async def _wait(renewal: asyncio.Future[Renewal], until: float) -> bool:
        """Wait for the renewal until loop time ``until``; True if it is done."""
        timeout = max(0.0, until - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({renewal}, timeout=timeout)
        return bool(done)

    def _failing(self, since: float, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 10 == 0:
            log.error(
                "lease renewal failed (%s); %.1fs since the last renewal (lease %gs)",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                since,
                self.ttl,
            )
        if since >= self.ttl / 2 and not self._holding:
            log.error("cannot renew leases: starting nothing until renewal works again")
            self._holding = True
            self._hold(True)
        if since >= self.ttl * 2 / 3 and self.held:
            self._lost(self.held, "leases could not be renewed before they expire")

    async def stop(self) -> None:
        """Release every lease and mark the registry row stopped (a graceful stop: the
        other schedulers take the DAGs over at once); close the keeper's store."""
        try:
            if self._leases is not None and self.scheduler_id is not None:
                try:
                    await self._leases.stop(self.scheduler_id, self.held)
                except DatabaseError as exc:
                    log.error(
                        "could not release the leases (%s): they expire in %gs", exc, self.ttl
                    )
        finally:
            if self._store is not None:
                await self._store.close()
            self._store = None
