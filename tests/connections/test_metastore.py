"""The metadata database as a source: encryption at rest, wrong and missing keys,
rotation, and the lookup order built from settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airloop.connections import Connection, ConnectionNotFound, configured_sources
from airloop.connections.crypto import Crypto, FernetKeyError, generate_key
from airloop.connections.lookup import aget_connection
from airloop.connections.metastore import MetastoreSource
from airloop.connections.sources import EnvironmentSource, find_connection
from airloop.store.connections import ConnectionStore

from .conftest import settings_for

PG = Connection(
    "warehouse",
    conn_type="postgres",
    host="db.example",
    schema="wh",
    login="etl",
    password="s3cret-pw",
    port=5432,
    extra=json.dumps({"sslmode": "require", "token": "t0k3n"}),
)


async def test_secrets_are_encrypted_at_rest_and_read_back(
    database_url: str, fernet_key: str
) -> None:
    source = MetastoreSource(database_url, fernet_key)
    try:
        await source.add_connections([PG])
        await source.set_variables([("api_key", "v4lue", "the API key")])
        assert await source.get_connection("warehouse") == PG
        assert await source.get_variable("api_key") == "v4lue"
        raw = await (await source.store()).get_connection("warehouse")
        assert raw is not None
        assert raw.is_encrypted
        assert raw.is_extra_encrypted
        assert raw.password is not None
        assert "s3cret" not in raw.password
        assert raw.extra is not None
        assert "t0k3n" not in raw.extra
        assert raw.host == "db.example"  # only secrets are encrypted
        var = await (await source.store()).get_variable("api_key")
        assert var is not None
        assert var.is_encrypted
        assert var.val is not None
        assert "v4lue" not in var.val
    finally:
        await source.aclose()


async def test_a_wrong_key_is_a_clear_error_without_the_secret(
    database_url: str, fernet_key: str
) -> None:
    writer = MetastoreSource(database_url, fernet_key)
    reader = MetastoreSource(database_url, generate_key())
    try:
        await writer.add_connections([PG])
        await writer.set_variables([("v", "x", None)])
        with pytest.raises(FernetKeyError) as info:
            await reader.get_connection("warehouse")
        assert str(info.value) == "the fernet key cannot decrypt connection 'warehouse': wrong key?"
        with pytest.raises(FernetKeyError, match=r"cannot decrypt variable 'v': wrong key\?"):
            await reader.get_variable("v")
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_no_key_is_needed_until_a_secret_is_written_or_read(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    keyless = MetastoreSource(url, "")
    keyed = MetastoreSource(url, generate_key())
    try:
        plain = Connection("api", conn_type="http", host="example.org")
        await keyless.add_connections([plain])
        assert await keyless.get_connection("api") == plain
        with pytest.raises(
            FernetKeyError,
            match=r"no fernet key to encrypt/decrypt connection 'x'.*AIRLOOP_FERNET_KEY",
        ):
            await keyless.add_connections([Connection("x", password="pw")])
        with pytest.raises(FernetKeyError, match=r"no fernet key.*variable 'v'"):
            await keyless.set_variables([("v", "1", None)])
        await keyed.add_connections([Connection("y", password="pw")])
        with pytest.raises(FernetKeyError, match=r"no fernet key.*connection 'y'"):
            await keyless.get_connection("y")
        assert await keyless.get_connection("nope") is None
    finally:
        await keyless.aclose()
        await keyed.aclose()


def test_a_malformed_key_names_the_setting() -> None:
    with pytest.raises(FernetKeyError, match=r"fernet_key .AIRLOOP_FERNET_KEY.: key 2 is not"):
        Crypto(f"{generate_key()},not-a-key")


async def test_rotation_re_encrypts_with_the_first_key(database_url: str) -> None:
    old, new = generate_key(), generate_key()
    before = MetastoreSource(database_url, old)
    keyless = MetastoreSource(database_url, "")
    both = MetastoreSource(database_url, f"{new},{old}")
    after = MetastoreSource(database_url, new)
    try:
        await before.add_connections([PG])
        await before.set_variables([("v", "value", None)])
        await keyless.add_connections([Connection("plain", host="h")])
        assert await both.rotate() == (2, 1)
        assert await after.get_connection("warehouse") == PG
        assert await after.get_variable("v") == "value"
        assert await after.get_connection("plain") == Connection("plain", host="h")
        with pytest.raises(FernetKeyError, match="wrong key"):
            await MetastoreSource(database_url, old).get_connection("warehouse")
    finally:
        for source in (before, keyless, both, after):
            await source.aclose()


async def test_sources_from_settings_environment_first(
    tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 's.db'}", fernet_key)
    sources = configured_sources(settings)
    assert [type(s) for s in sources] == [EnvironmentSource, MetastoreSource]
    assert configured_sources(settings)[1] is sources[1]  # one set per configuration
    db = sources[1]
    assert isinstance(db, MetastoreSource)
    await db.add_connections([PG])
    assert (await find_connection("warehouse", sources)).host == "db.example"
    monkeypatch.setenv("AIRLOOP_CONN_WAREHOUSE", "postgres://u:p@env-host:1/x")
    assert (await find_connection("warehouse", sources)).host == "env-host"
    with pytest.raises(ConnectionNotFound) as info:
        await find_connection("missing", sources)
    assert str(info.value) == (
        "connection 'missing' not found (looked in: environment variable "
        "AIRLOOP_CONN_MISSING, metadata database)"
    )
    await db.aclose()


async def test_aget_connection_reads_the_scripts_settings(
    tmp_path: Path, fernet_key: str, use_settings: object
) -> None:
    settings = settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", fernet_key)
    use_settings(settings)  # type: ignore[operator]
    await MetastoreSource(settings.database_url, fernet_key).add_connections([PG])
    assert await aget_connection("warehouse") == PG


async def test_the_store_sees_only_ciphertext_rows(database_url: str, fernet_key: str) -> None:
    """The table holds text the store never interprets (ADR 0031)."""
    source = MetastoreSource(database_url, fernet_key)
    await source.add_connections([PG])
    store = await ConnectionStore.open(database_url)
    try:
        rows = await store.connections()
        assert [r.conn_id for r in rows] == ["warehouse"]
        assert Crypto(fernet_key).decrypt(rows[0].password or "", "x") == "s3cret-pw"
    finally:
        await store.close()
        await source.aclose()


async def test_many_first_lookups_at_once_open_the_database_once(tmp_path: Path) -> None:
    import asyncio

    source = MetastoreSource(f"sqlite+aiosqlite:///{tmp_path / 'herd.db'}")
    try:
        stores = await asyncio.gather(*(source.store() for _ in range(50)))
        assert len({id(s) for s in stores}) == 1
        found = await asyncio.gather(*(source.get_connection("x") for _ in range(50)))
        assert found == [None] * 50
    finally:
        await source.aclose()
