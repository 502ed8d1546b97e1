"""Change notifications for schedulers in other processes (ADR 0041, "Creating runs").

A write another scheduler must act on (a run queued, a DAG paused, a run cleared or
its state set, a mark asked through the API, a pool edited) calls ``notify`` inside
its own transaction. On PostgreSQL that is ``pg_notify('airloop_changes', payload)``:
the server delivers it to every listener (``airloop.store.listener``) only when the
transaction commits, so a scheduler is never woken for a change it cannot read yet,
and never for one rolled back. MySQL/MariaDB and SQLite have no LISTEN: there it does
nothing and the schedulers find the change at their next poll
(``scheduler_poll_interval``).

The payload is ``kind:subject`` (``queued:my_dag``, ``pool:default_pool``): short,
for logs and debugging; a listener wakes for any payload and reads the database.
"""

from __future__ import annotations

from sqlalchemy import String, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.store.schema import dag_run

#: The one channel every airloop writer notifies and every scheduler listens on.
CHANNEL = "airloop_changes"
#: PostgreSQL refuses payloads of 8000 bytes or more; a subject is cut well before.
MAX_SUBJECT = 200


def payload(kind: str, subject: str) -> str:
    return f"{kind}:{subject[:MAX_SUBJECT]}"


def _listens(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def notify(conn: AsyncConnection, kind: str, subject: str) -> None:
    """Tell the other schedulers, once ``conn``'s transaction commits, that something
    of ``kind`` changed about ``subject`` (a dag_id, a pool's name). No-op off
    PostgreSQL."""
    if _listens(conn):
        await conn.execute(select(func.pg_notify(CHANNEL, payload(kind, subject))))


async def notify_run(conn: AsyncConnection, kind: str, run_pk: int) -> None:
    """``notify`` about a run's DAG, found in the same statement (the caller has the
    run's key only)."""
    if not _listens(conn):
        return
    subject = func.substr(dag_run.c.dag_id, 1, MAX_SUBJECT)
    message = literal(f"{kind}:", String()) + subject
    await conn.execute(select(func.pg_notify(CHANNEL, message)).where(dag_run.c.id == run_pk))


__all__ = ["CHANNEL", "MAX_SUBJECT", "notify", "notify_run", "payload"]
