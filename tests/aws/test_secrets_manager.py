"""AWS Secrets Manager as the secrets backend, against the emulator (moto's server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, Variable, task
from airloop.connections import Connection, InvalidConnection, lookup, set_sources
from airloop.connections.metastore import MetastoreSource
from airloop.connections.sources import EnvironmentSource, find_connection, find_variable
from airloop.core.states import DagRunState
from airloop.engine.engine import Engine
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AwsHub
from airloop.providers.aws.secrets_manager import SecretsManagerBackend
from airloop.providers.aws.session import client_context

from .conftest import aws_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

BACKEND = "airloop.providers.aws.secrets_manager.SecretsManagerBackend"


async def put(emulator: BatchEmulator, name: str, value: str) -> None:
    async with client_context("secretsmanager", **emulator.client_settings()) as sm:
        try:
            await sm.create_secret(Name=name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            await sm.put_secret_value(SecretId=name, SecretString=value)


@pytest.fixture
def script_settings(emulator: BatchEmulator, tmp_path: Path) -> Iterator[Any]:
    settings = aws_settings(emulator, tmp_path)
    old = lookup._loaded
    lookup._loaded = settings  # what a script's load_settings() would give
    yield settings
    lookup._loaded = old
    set_sources(None)


async def test_connections_and_variables_from_secrets_manager(
    emulator: BatchEmulator, script_settings: Any
) -> None:
    await put(emulator, "airloop/connections/sm_db", "postgres://etl:pw@sm-host:5432/wh")
    await put(
        emulator, "airloop/connections/sm_api", json.dumps({"conn_type": "http", "host": "api"})
    )
    await put(emulator, "airloop/variables/sm_region", "eu-west-3")
    backend = SecretsManagerBackend()
    conn = await backend.get_connection("sm_db")
    assert conn == Connection("sm_db", "postgres", None, "sm-host", "wh", "etl", "pw", 5432)
    api = await backend.get_connection("sm_api")
    assert api is not None
    assert api.host == "api"
    assert await backend.get_variable("sm_region") == "eu-west-3"
    assert await backend.get_connection("absent") is None
    assert await backend.get_variable("absent") is None
    assert await SecretsManagerBackend(variables_prefix=None).get_variable("sm_region") is None


async def test_prefixes_and_a_bad_secret(emulator: BatchEmulator, script_settings: Any) -> None:
    await put(emulator, "team-a:conns:x", "http://h")
    await put(emulator, "airloop/connections/broken", "not a uri")
    backend = SecretsManagerBackend(connections_prefix="team-a:conns", sep=":")
    found = await backend.get_connection("x")
    assert found is not None
    assert found.host == "h"
    with pytest.raises(InvalidConnection, match="secret 'airloop/connections/broken'"):
        await SecretsManagerBackend().get_connection("broken")


async def test_the_lookup_order_environment_backend_database(
    emulator: BatchEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script_settings: Any
) -> None:
    settings = aws_settings(emulator, tmp_path).model_copy(
        update={
            "secrets_backend": BACKEND,
            "secrets_backend_kwargs": {"connections_prefix": "airloop/connections"},
        }
    )
    sources = lookup.configured_sources(settings)
    assert [s.name for s in sources] == ["environment", "AWS Secrets Manager", "metadata database"]
    db = sources[2]
    assert isinstance(db, MetastoreSource)
    await db.add_connections([Connection("order", host="from-db"), Connection("db_only", host="d")])
    await put(emulator, "airloop/connections/order", "http://from-sm")
    assert (await find_connection("order", sources)).host == "from-sm"
    assert (await find_connection("db_only", sources)).host == "d"
    monkeypatch.setenv("AIRLOOP_CONN_ORDER", "http://from-env")
    assert (await find_connection("order", sources)).host == "from-env"
    assert await find_variable("sm_region", sources) == "eu-west-3"
    await db.aclose()


async def test_a_task_reads_a_secret_through_the_engines_hub(
    emulator: BatchEmulator, tmp_path: Path, script_settings: Any
) -> None:
    await put(emulator, "airloop/variables/in_task", "from-a-task")
    settings = aws_settings(emulator, tmp_path).model_copy(update={"secrets_backend": BACKEND})
    set_sources(None)

    with DAG("sm_task") as dag:

        @task
        async def read() -> str:
            return str(await Variable.aget("in_task"))

        @task
        def read_sync() -> str:
            return str(Variable.get("in_task"))

        read() >> read_sync()

    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        hub = await AwsHub.current_for(engine)  # the one the tasks used
        assert hub.calls["GetSecretValue"] >= 1
    assert isinstance(lookup.configured_sources(settings)[0], EnvironmentSource)
