"""What the several-scheduler suite reads from the shared database, and the audit.

The audit is a trigger the test installs on ``task_instance`` (PostgreSQL and MariaDB):
every row update is copied with its old and new state and try number, on the
database's clock. It is what shows a late write that fencing should have stopped: a
task instance failed as lost (or retried) by the adopter must never go back to
success or running under the same try number, try numbers never go down, and a
finished instance never changes again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

AUDIT_TABLE = """
CREATE TABLE ti_audit (
    id {serial} PRIMARY KEY,
    ti_id BIGINT NOT NULL,
    old_state VARCHAR(20), new_state VARCHAR(20),
    old_try INTEGER, new_try INTEGER,
    changed_at {timestamp} NOT NULL
)
"""

PG_AUDIT = [
    AUDIT_TABLE.format(serial="BIGSERIAL", timestamp="TIMESTAMPTZ"),
    """
    CREATE FUNCTION ti_audit_row() RETURNS trigger AS $$
    BEGIN
        IF OLD.state IS DISTINCT FROM NEW.state OR OLD.try_number <> NEW.try_number THEN
            INSERT INTO ti_audit (ti_id, old_state, new_state, old_try, new_try, changed_at)
            VALUES (NEW.id, OLD.state, NEW.state, OLD.try_number, NEW.try_number,
                    clock_timestamp());
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER ti_audit_trigger AFTER UPDATE ON task_instance
    FOR EACH ROW EXECUTE FUNCTION ti_audit_row()
    """,
]

MARIADB_AUDIT = [
    AUDIT_TABLE.format(serial="BIGINT AUTO_INCREMENT", timestamp="DATETIME(6)"),
    """
    CREATE TRIGGER ti_audit_trigger AFTER UPDATE ON task_instance FOR EACH ROW
    INSERT INTO ti_audit (ti_id, old_state, new_state, old_try, new_try, changed_at)
    SELECT NEW.id, OLD.state, NEW.state, OLD.try_number, NEW.try_number, UTC_TIMESTAMP(6)
    FROM DUAL WHERE NOT (OLD.state <=> NEW.state) OR OLD.try_number <> NEW.try_number
    """,
]

#: States from which a try never comes back under the same try number.
_ENDED = {"failed", "up_for_retry", "upstream_failed", "success", "skipped"}


@dataclass(frozen=True)
class Audit:
    ti_id: int
    old_state: str | None
    new_state: str | None
    old_try: int
    new_try: int
    at: datetime


class Db:
    """One engine on the test's database; raw SQL, since the schema is the contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = "postgresql" if url.startswith("postgresql") else "mariadb"
        self.engine: AsyncEngine = create_async_engine(url, pool_size=2)

    async def close(self) -> None:
        await self.engine.dispose()

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(r._mapping) for r in result]

    async def install_audit(self) -> None:
        statements = PG_AUDIT if self.backend == "postgresql" else MARIADB_AUDIT
        async with self.engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))

    async def audit(self) -> list[Audit]:
        rows = await self.rows(
            "SELECT ti_id, old_state, new_state, old_try, new_try, changed_at AS at FROM ti_audit ORDER BY id"
        )
        return [Audit(**r) for r in rows]

    async def registry(self) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM scheduler_heartbeat ORDER BY id")

    async def owners(self) -> dict[str, tuple[int | None, int]]:
        """dag_id -> (owner registry id, lease token)."""
        rows = await self.rows("SELECT dag_id, owner_id, lease_token FROM dag")
        return {r["dag_id"]: (r["owner_id"], int(r["lease_token"])) for r in rows}

    async def run_states(self) -> dict[tuple[str, str], str]:
        rows = await self.rows("SELECT dag_id, run_id, state FROM dag_run")
        return {(r["dag_id"], r["run_id"]): r["state"] for r in rows}

    async def ti_done(self) -> int:
        rows = await self.rows(
            "SELECT count(*) AS n FROM task_instance WHERE state IN ('success', 'skipped')"
        )
        return int(rows[0]["n"])

    async def task_instances(self) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT ti.id, r.dag_id, r.run_id, ti.task_id, ti.map_index, ti.state, "
            "ti.try_number, ti.error FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id"
        )


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Db]:
    db = Db(url)
    try:
        yield db
    finally:
        await db.close()


def audit_violations(audit: list[Audit]) -> list[str]:
    """Updates no single writer of a task instance would make (see the module doc)."""
    bad: list[str] = []
    ended_try: dict[int, int] = {}
    for a in audit:
        if a.new_try < a.old_try:
            bad.append(f"{a}: the try number went down")
        if a.old_state == "success":
            bad.append(f"{a}: a finished task instance changed")
        if a.new_try == ended_try.get(a.ti_id) and a.new_state in ("running", "queued", "success"):
            bad.append(f"{a}: try {a.new_try} came back after it ended")
        if a.new_state in _ENDED:
            ended_try[a.ti_id] = a.new_try
    return bad
