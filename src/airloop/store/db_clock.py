"""Times on the database's clock (ADR 0041): leases and the scheduler registry are
compared with the server's ``now``, never a host's, so clock skew between the hosts of
several schedulers cannot make a lease look expired (or alive) early."""

from __future__ import annotations

from sqlalchemy import Dialect, literal_column
from sqlalchemy.sql.elements import ColumnElement


def db_now(dialect: Dialect) -> ColumnElement[object]:
    """The server's current UTC time, as the naive UTC the datetime columns store."""
    name = dialect.name
    if name == "postgresql":
        return literal_column("(now() AT TIME ZONE 'UTC')")
    if name in ("mysql", "mariadb"):
        return literal_column("UTC_TIMESTAMP(6)")
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" text (airloop.store.types).
    return literal_column("strftime('%Y-%m-%d %H:%M:%f000', 'now')")


def db_later(dialect: Dialect, seconds: float) -> ColumnElement[object]:
    """The server's UTC time ``seconds`` from now (a lease's end)."""
    micros = round(seconds * 1_000_000)
    name = dialect.name
    if name == "postgresql":
        return literal_column(f"((now() AT TIME ZONE 'UTC') + interval '{micros} microseconds')")
    if name in ("mysql", "mariadb"):
        return literal_column(f"(UTC_TIMESTAMP(6) + INTERVAL {micros} MICROSECOND)")
    return literal_column(
        f"strftime('%Y-%m-%d %H:%M:%f000', 'now', '{micros / 1_000_000:+.6f} seconds')"
    )
