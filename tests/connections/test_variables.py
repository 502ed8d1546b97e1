"""Airflow's Variable API: get (sync off-loop, aget on it), set, delete, defaults, JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from airloop import Variable
from airloop.connections import VariableNotFound
from airloop.connections.crypto import FernetKeyError
from airloop.connections.lookup import SecretsBackendError, load_backend
from airloop.connections.variable import InvalidVariable
from airloop.exceptions import AirloopError
from airloop.settings import Settings

from .conftest import settings_for


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fernet_key: str, use_settings: object) -> Settings:
    return use_settings(settings_for(tmp_path, database_url, fernet_key))  # type: ignore[operator,no-any-return]


async def test_set_get_delete_on_the_loop(settings: Settings) -> None:
    await Variable.aset("plain", "hello", description="a greeting")
    await Variable.aset("cfg", {"rows": [1, 2]}, serialize_json=True)
    assert await Variable.aget("plain") == "hello"
    assert await Variable.aget("cfg", deserialize_json=True) == {"rows": [1, 2]}
    assert json.loads(await Variable.aget("cfg")) == {"rows": [1, 2]}
    assert await Variable.aget("missing", default_var=None) is None
    assert await Variable.aget("missing", default_var="d") == "d"
    with pytest.raises(KeyError) as info:
        await Variable.aget("missing")
    assert isinstance(info.value, VariableNotFound)
    assert str(info.value) == (
        "variable 'missing' not found (looked in: environment variable "
        "AIRLOOP_VAR_MISSING, metadata database)"
    )
    with pytest.raises(InvalidVariable, match="variable 'plain' is not JSON"):
        await Variable.aget("plain", deserialize_json=True)
    assert await Variable.adelete("plain") is True
    assert await Variable.aget("plain", default_var=None) is None


async def test_the_sync_api_blocks_a_worker_thread_never_the_loop(settings: Settings) -> None:
    with pytest.raises(AirloopError, match=r"Variable.get\('x'\) called on the event loop"):
        Variable.get("x")

    def in_thread() -> tuple[object, object, bool]:
        Variable.set("n", [1, 2], serialize_json=True)
        got = Variable.get("n", deserialize_json=True)
        default = Variable.get("absent", default_var=7)
        return got, default, Variable.delete("n")

    assert await asyncio.to_thread(in_thread) == ([1, 2], 7, True)


def test_the_sync_api_from_a_script(tmp_path: Path, fernet_key: str, use_settings: object) -> None:
    use_settings(  # type: ignore[operator]
        settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 's.db'}", fernet_key)
    )
    Variable.set("k", "v")
    assert Variable.get("k") == "v"


async def test_environment_wins_and_setting_a_shadowed_key_warns(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRLOOP_VAR_REGION", "from-env")
    await Variable.aset("region", "from-db")
    assert await Variable.aget("region") == "from-env"
    assert "AIRLOOP_VAR_REGION is set too and wins" in caplog.text


async def test_bad_values_and_a_missing_key(tmp_path: Path, use_settings: object) -> None:
    use_settings(settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"))  # type: ignore[operator]
    with pytest.raises(InvalidVariable, match=r"must be a str .got int.; pass serialize_json"):
        await Variable.aset("n", 1)
    with pytest.raises(FernetKeyError, match="no fernet key to encrypt/decrypt variable 'n'"):
        await Variable.aset("n", "1")


def test_secrets_backend_loading_errors() -> None:
    with pytest.raises(SecretsBackendError, match="not a class path"):
        load_backend("Nothing", {})
    with pytest.raises(SecretsBackendError, match="cannot import no_such_module"):
        load_backend("no_such_module.Backend", {})
    with pytest.raises(SecretsBackendError, match="json has no class Backend"):
        load_backend("json.Backend", {})
    with pytest.raises(SecretsBackendError, match="get_connection must be an async method"):
        load_backend("json.JSONDecoder", {})
    with pytest.raises(SecretsBackendError, match="bad secrets_backend_kwargs"):
        load_backend("airloop.connections.sources.EnvironmentSource", {"nope": 1})
    backend = load_backend("airloop.connections.sources.EnvironmentSource", {})
    assert backend.name == "environment"
