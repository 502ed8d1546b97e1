"""DAG leases for several schedulers on one database (ADR 0041).

A DAG row carries its lease: ``owner_id`` (a row of ``scheduler_heartbeat``, the
registry), ``lease_token`` (incremented by every claim, never otherwise) and
``lease_expires_at`` (the database's clock). The owner drives the DAG and all its runs;
every write it makes about them is fenced by the token (``airloop.store.fencing``).

The statements here: registering a scheduler, claiming free or expired DAGs (``FOR
UPDATE SKIP LOCKED``: two schedulers claiming at once take different DAGs), renewing
every lease a scheduler holds, releasing some or all of them, and the numbers a
scheduler needs for its fair share. Lock order everywhere: DAG rows by dag_id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.store.db_clock import db_later, db_now
from airloop.store.errors import begin, connect
from airloop.store.runs import Store, utcnow
from airloop.store.schema import dag as dag_table
from airloop.store.schema import scheduler_heartbeat

_d = dag_table.c
_s = scheduler_heartbeat.c

#: Registry states.
RUNNING = "running"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a renewal found: the DAGs still held (dag_id -> token) and those lost."""

    held: dict[str, int]
    lost: set[str]


async def server_supports_leases(store: Store) -> str | None:
    """None if the server has what leases need (``SKIP LOCKED``), else why not."""
    dialect = store.engine.dialect
    if dialect.name == "sqlite":
        return "SQLite allows one scheduler per database file"
    async with connect(store.engine) as conn:
        await conn.execute(select(1))  # the dialect learns the server's version
    version = dialect.server_version_info or ()
    if dialect.name == "postgresql":
        return None if version >= (12,) else f"PostgreSQL {version} is older than 12"
    if getattr(dialect, "is_mariadb", False):
        return None if version >= (10, 6) else f"MariaDB {version} is older than 10.6 (SKIP LOCKED)"
    return None if version >= (8, 0, 1) else f"MySQL {version} is older than 8.0.1 (SKIP LOCKED)"


class LeaseStore:
    """The lease statements, for one scheduler's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.dialect = store.engine.dialect

    def _later(self, seconds: float) -> Any:
        return db_later(self.dialect, seconds)

    async def register(self, *, hostname: str, pid: int, ttl: float, mode: str) -> int:
        """A new registry row for this scheduler, live for ``ttl`` seconds."""
        now = utcnow()
        async with begin(self.engine) as conn:
            result = await conn.execute(
                insert(scheduler_heartbeat).values(
                    hostname=hostname,
                    pid=pid,
                    state=RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    expires_at=self._later(ttl),
                    dags_owned=0,
                    mode=mode,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    async def live_schedulers(self) -> int:
        """Schedulers in the registry whose lease on life has not expired (with leases)."""
        query = select(func.count()).where(
            and_(_s.state == RUNNING, _s.mode == "ha", _s.expires_at > db_now(self.dialect))
        )
        async with connect(self.engine) as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def claim(
        self, me: int, candidates: Collection[str], limit: int, ttl: float
    ) -> dict[str, int]:
        """Take up to ``limit`` of ``candidates`` whose lease is free or expired (rows
        another scheduler is claiming right now are skipped, not waited for). Returns
        dag_id -> the new token of each DAG taken."""
        if limit <= 0 or not candidates:
            return {}
        now = db_now(self.dialect)
        free = or_(_d.owner_id.is_(None), _d.lease_expires_at.is_(None), _d.lease_expires_at < now)
        query = (
            select(_d.dag_id)
            .where(and_(_d.dag_id.in_(sorted(candidates)), _d.is_active.is_(True), free))
            .order_by(_d.dag_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with begin(self.engine) as conn:
            taken = [r.dag_id for r in await conn.execute(query)]
            if not taken:
                return {}
            await conn.execute(
                update(dag_table)
                .where(_d.dag_id.in_(taken))
                .values(
                    owner_id=me,
                    lease_token=_d.lease_token + 1,
                    lease_expires_at=self._later(ttl),
                )
            )
            return await _tokens(conn, me, taken)

    async def renew(
        self, me: int, held: Mapping[str, int], ttl: float, stats: Mapping[str, Any]
    ) -> Renewal:
        """Extend this scheduler's registry row and every lease it holds (``held``:
        dag_id -> token). A DAG whose row no longer has this owner and token was taken
        over (this scheduler was paused or cut off past its lease): it is lost."""
        later = self._later(ttl)
        async with begin(self.engine) as conn:
            await conn.execute(
                update(scheduler_heartbeat)
                .where(_s.id == me)
                .values(
                    heartbeat_at=db_now(self.dialect),
                    expires_at=later,
                    state=RUNNING,
                    dags_owned=len(held),
                    **stats,
                )
            )
            if not held:
                return Renewal({}, set())
            names = sorted(held)
            await conn.execute(
                update(dag_table)
                .where(and_(_d.owner_id == me, _d.dag_id.in_(names)))
                .values(lease_expires_at=later)
            )
            now_held = await _tokens(conn, me, names)
        kept = {d: t for d, t in now_held.items() if held.get(d) == t}
        return Renewal(kept, set(held) - set(kept))

    async def release(self, me: int, dag_ids: Collection[str]) -> None:
        """Give DAGs up (idle ones above the fair share, or all at a graceful stop):
        the next claim takes them at once. The token stays: fencing compares owner and
        token, and the next claim increments it."""
        if not dag_ids:
            return
        async with begin(self.engine) as conn:
            await conn.execute(
                update(dag_table)
                .where(and_(_d.owner_id == me, _d.dag_id.in_(sorted(dag_ids))))
                .values(owner_id=None, lease_expires_at=None)
            )

    async def stop(self, me: int, held: Collection[str]) -> None:
        """A graceful stop: every lease released, the registry row marked stopped."""
        await self.release(me, held)
        async with begin(self.engine) as conn:
            await conn.execute(
                update(scheduler_heartbeat)
                .where(_s.id == me)
                .values(
                    state=STOPPED,
                    heartbeat_at=db_now(self.dialect),
                    expires_at=db_now(self.dialect),
                    dags_owned=0,
                )
            )

    async def owners(self, dag_ids: Collection[str]) -> dict[str, int | None]:
        """dag_id -> owner (registry id) of each DAG, for reports and tests."""
        query = select(_d.dag_id, _d.owner_id).where(_d.dag_id.in_(sorted(dag_ids)))
        async with connect(self.engine) as conn:
            return {r.dag_id: r.owner_id for r in await conn.execute(query)}


async def _tokens(conn: AsyncConnection, me: int, dag_ids: Collection[str]) -> dict[str, int]:
    query = select(_d.dag_id, _d.lease_token).where(
        and_(_d.owner_id == me, _d.dag_id.in_(sorted(dag_ids)))
    )
    return {r.dag_id: int(r.lease_token) for r in await conn.execute(query)}
