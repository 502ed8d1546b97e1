"""Which database URLs airloop can use, checked without importing SQLAlchemy or a driver.

airloop talks to its database through SQLAlchemy's asyncio extension, which needs an
async driver. A sync URL (``postgresql://``, ``sqlite:///x.db``, ``mysql+pymysql://``)
would fail deep inside SQLAlchemy; here it gets one line saying what to write instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


class DatabaseUrlError(ValueError):
    """A database URL airloop cannot use; the message says what to write instead."""


@dataclass(frozen=True)
class Driver:
    module: str  #: what to import
    install: str  #: how to install it


#: dialect -> its async drivers (the first is the recommended one).
ASYNC_DRIVERS: dict[str, dict[str, Driver]] = {
    "sqlite": {"aiosqlite": Driver("aiosqlite", "pip install --force-reinstall airloop")},
    "postgresql": {"asyncpg": Driver("asyncpg", "pip install 'airloop[postgres]'")},
    "mysql": {
        "asyncmy": Driver("asyncmy", "pip install 'airloop[mysql]'"),
        "aiomysql": Driver("aiomysql", "pip install aiomysql"),
    },
    "mariadb": {
        "asyncmy": Driver("asyncmy", "pip install 'airloop[mysql]'"),
        "aiomysql": Driver("aiomysql", "pip install aiomysql"),
    },
}

#: Sync drivers SQLAlchemy knows for these dialects ("" is the dialect's default driver).
SYNC_DRIVERS = {
    "sqlite": {"", "pysqlite", "pysqlcipher"},
    "postgresql": {"", "psycopg2", "psycopg2cffi", "psycopg", "pg8000"},
    "mysql": {"", "pymysql", "mysqldb", "mysqlconnector", "cymysql", "pyodbc"},
    "mariadb": {"", "pymysql", "mysqldb", "mysqlconnector", "cymysql", "pyodbc"},
}

#: Names that are not SQLAlchemy dialects but mean one (Heroku-style ``postgres://``).
ALIASES = {"postgres": "postgresql", "pgsql": "postgresql", "sqlite3": "sqlite"}

SUPPORTED = "sqlite+aiosqlite://, postgresql+asyncpg:// or mysql+asyncmy://"


def _scheme(url: str) -> tuple[str, str]:
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise DatabaseUrlError(
            f"{url!r} is not a database URL: expected e.g. sqlite+aiosqlite:////path/airloop.db"
        )
    dialect, _, driver = scheme.lower().partition("+")
    return dialect, driver


def _recommended(dialect: str) -> str:
    driver = next(iter(ASYNC_DRIVERS[dialect]))
    return f"{dialect}+{driver}://"


def check_database_url(url: str) -> Driver:
    """The async driver ``url`` needs; DatabaseUrlError if airloop cannot use the URL.

    Only the scheme is looked at (never printed back in full: it may hold a password).
    """
    dialect, driver = _scheme(url)
    scheme = f"{dialect}+{driver}://" if driver else f"{dialect}://"
    if dialect in ALIASES:
        raise DatabaseUrlError(
            f"{scheme} is not a SQLAlchemy URL: use {_recommended(ALIASES[dialect])}"
        )
    if dialect not in ASYNC_DRIVERS:
        raise DatabaseUrlError(f"{scheme} is not supported: use {SUPPORTED}")
    found = ASYNC_DRIVERS[dialect].get(driver)
    if found is not None:
        return found
    if driver in SYNC_DRIVERS[dialect]:
        raise DatabaseUrlError(f"{scheme} is a sync driver: use {_recommended(dialect)}")
    raise DatabaseUrlError(
        f"{scheme}: unknown driver {driver!r} for {dialect}: use {_recommended(dialect)}"
    )


def import_driver(url: str) -> None:
    """Import the URL's driver; DatabaseUrlError saying what to install if it is missing."""
    driver = check_database_url(url)
    try:
        importlib.import_module(driver.module)
    except ImportError as exc:
        missing = exc.name or driver.module
        raise DatabaseUrlError(
            f"the database driver {driver.module} is not installed"
            + (f" (cannot import {missing})" if missing != driver.module else "")
            + f": {driver.install}"
        ) from None
