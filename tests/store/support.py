"""Helpers shared by the store tests."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection

from airloop.store.database import alembic_config, create_engine


async def database_at(url: str, revision: str) -> None:
    """A database exactly as an older airloop left it: migrated only up to ``revision``."""
    engine = create_engine(url)
    try:

        def upgrade(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()
