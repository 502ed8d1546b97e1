"""Driver errors become airloop's own at the store's edge (ADR 0020)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airloop.exceptions import AirloopError, DatabaseError, TransientDatabaseError

#: Errors the same statement would raise again: a value the column refuses, a
#: statement the server cannot run.
_PERMANENT = (DataError, ProgrammingError, NotSupportedError)
#: SQLSTATE classes that mean the same (asyncpg reports most errors as a plain
#: ``Error`` whose ``sqlstate`` says what it was): 22 data exception, 42 syntax error
#: or access rule violation.
_PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "42"})


def _permanent(exc: DBAPIError) -> bool:
    if isinstance(exc, _PERMANENT):
        return True
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _PERMANENT_SQLSTATE_CLASSES


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def driver_errors(conflict: type[AirloopError] | None = None, what: str = "") -> Iterator[None]:
    """Translate what the driver raises inside the block.

    A violated constraint is ``conflict(what)`` when given, else a DatabaseError (the
    same write would fail again), and so is a value or statement the server refuses
    (``_permanent``); any other driver or connection error is a
    TransientDatabaseError (a dropped connection, a restarting server, a deadlock, a
    full pool).
    """
    try:
        yield
    except IntegrityError as exc:
        if conflict is not None:
            raise conflict(what or _first_line(exc.orig or exc)) from exc
        raise DatabaseError(
            f"the database refused a write: {_first_line(exc.orig or exc)}"
        ) from exc
    except DBAPIError as exc:
        if _permanent(exc):
            raise DatabaseError(
                f"the database refused a statement: {_first_line(exc.orig or exc)}"
            ) from exc
        raise TransientDatabaseError(_first_line(exc)) from exc
    except (PoolTimeout, OSError) as exc:
        raise TransientDatabaseError(_first_line(exc)) from exc


@contextlib.asynccontextmanager
async def begin(
    engine: AsyncEngine, conflict: type[AirloopError] | None = None, what: str = ""
) -> AsyncIterator[AsyncConnection]:
    """A transaction (committed at the end of the block) with translated errors."""
    with driver_errors(conflict, what):
        async with engine.begin() as conn:
            yield conn


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads, with translated errors."""
    with driver_errors():
        async with engine.connect() as conn:
            yield conn
