"""Requests to change a run the scheduler is driving (table ``run_request``): the API
writes them, the scheduler service applies them on its next pass and records when and
how (ADR 0039). Actions: ``mark_failed``, ``mark_success``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, select, update

from airloop.store.errors import begin, connect
from airloop.store.notify import notify_run
from airloop.store.runs import Store, utcnow
from airloop.store.schema import run_request

ACTIONS = ("mark_failed", "mark_success")


@dataclass(frozen=True, slots=True)
class RunRequest:
    id: int
    run_pk: int
    action: str
    requested_by: str
    created_at: datetime
    done_at: datetime | None = None
    outcome: str | None = None


def _record(row: object) -> RunRequest:
    r = row._mapping  # type: ignore[attr-defined]
    return RunRequest(
        id=int(r["id"]),
        run_pk=int(r["dag_run_id"]),
        action=r["action"],
        requested_by=r["requested_by"],
        created_at=r["created_at"],
        done_at=r["done_at"],
        outcome=r["outcome"],
    )


async def add_request(store: Store, run_pk: int, action: str, requested_by: str) -> RunRequest:
    """Ask the scheduler to change the run: a service sharing this store is woken at
    once, any other through the change notification (PostgreSQL) or at its next poll."""
    if action not in ACTIONS:
        raise ValueError(f"unknown run request {action!r} (known: {', '.join(ACTIONS)})")
    now = utcnow()
    async with begin(store.engine) as conn:
        result = await conn.execute(
            insert(run_request).values(
                dag_run_id=run_pk, action=action, requested_by=requested_by, created_at=now
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        await notify_run(conn, action, run_pk)
    store.events.queued.set()
    return RunRequest(int(pk[0]), run_pk, action, requested_by, now)


async def pending_requests(store: Store) -> list[RunRequest]:
    """Requests not applied yet, oldest first."""
    query = select(run_request).where(run_request.c.done_at.is_(None)).order_by(run_request.c.id)
    async with connect(store.engine) as conn:
        return [_record(r) for r in await conn.execute(query)]


async def requests_of(store: Store, run_pk: int) -> list[RunRequest]:
    query = select(run_request).where(run_request.c.dag_run_id == run_pk).order_by(run_request.c.id)
    async with connect(store.engine) as conn:
        return [_record(r) for r in await conn.execute(query)]


async def finish_request(store: Store, request_id: int, outcome: str) -> None:
    async with begin(store.engine) as conn:
        await conn.execute(
            update(run_request)
            .where(and_(run_request.c.id == request_id, run_request.c.done_at.is_(None)))
            .values(done_at=utcnow(), outcome=outcome)
        )


__all__ = [
    "ACTIONS",
    "RunRequest",
    "add_request",
    "finish_request",
    "pending_requests",
    "requests_of",
]
