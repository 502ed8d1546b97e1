"""Variables and connections in a real run: templates ({{ var }}, {{ conn }}), the
context, Variable.get in a sync task (the lookup runs on the engine's loop while the
worker thread waits), await Variable.aget in an async task."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airloop import DAG, BaseOperator, Connection, Context, DagRunState, Variable, task
from airloop.connections import set_sources
from airloop.connections.crypto import generate_key
from airloop.connections.metastore import MetastoreSource
from airloop.connections.sources import EnvironmentSource
from airloop.engine.engine import Engine
from airloop.hooks import BaseHook
from airloop.settings import Settings

from .support import xcom_map


class Echo(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("text",)

    def __init__(self, *, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context: Context) -> Any:
        return self.text


class ThreadRecordingSource(MetastoreSource):
    """The real database source, noting which thread each lookup ran on."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, key)
        self.threads: list[int] = []

    async def get_variable(self, key: str) -> str | None:
        self.threads.append(threading.get_ident())
        return await super().get_variable(key)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, fernet_key=generate_key())


@pytest.fixture
async def source(settings: Settings) -> AsyncIterator[ThreadRecordingSource]:
    db = ThreadRecordingSource(settings.database_url, settings.fernet_key)
    await db.add_connections(
        [Connection("my_db", conn_type="postgres", host="db.local", password="pw", port=5432)]
    )
    await db.set_variables([("table", "events", None), ("cfg", '{"limit": 3}', None)])
    set_sources([EnvironmentSource(), db])
    yield db
    set_sources(None)
    await db.aclose()


async def test_templates_and_tasks_read_variables_and_connections(
    engine: Engine, source: ThreadRecordingSource
) -> None:
    with DAG("uses_secrets") as dag:
        echo = Echo(
            task_id="echo",
            text=(
                "{{ var.value.table }}/{{ var.json.cfg.limit }}/{{ conn.my_db.host }}:"
                "{{ conn.my_db.port }}/{{ var.value.get('nope', 'dflt') }}"
            ),
        )

        @task
        def sync_reader(var: Any, conn: Any) -> list[Any]:
            hooked = BaseHook.get_connection("my_db")
            return [
                Variable.get("table"),
                Variable.get("cfg", deserialize_json=True),
                hooked.password,
                var.value.table,
                conn.my_db.host,
            ]

        @task
        async def async_reader() -> list[Any]:
            return [await Variable.aget("table"), (await BaseHook.aget_connection("my_db")).port]

        echo >> sync_reader() >> async_reader()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = {k[0]: json.loads(v) for k, v in (await xcom_map(engine, result.run_pk)).items()}
    assert values["echo"] == "events/3/db.local:5432/dflt"
    assert values["sync_reader"] == ["events", {"limit": 3}, "pw", "events", "db.local"]
    assert values["async_reader"] == ["events", 5432]


@pytest.mark.async_executor
async def test_sync_lookups_in_worker_threads_run_on_the_engines_loop(
    engine: Engine, source: ThreadRecordingSource
) -> None:
    with DAG("lookups_on_loop") as dag:
        echo = Echo(task_id="echo", text="{{ var.value.table }}")

        @task
        def sync_reader() -> str:
            assert threading.current_thread() is not threading.main_thread()
            return str(Variable.get("table"))

        echo >> sync_reader()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    # Both lookups (a template and sync task code, each in a worker thread) ran on
    # the engine's loop, this test's thread: no worker made a loop of its own.
    assert source.threads == [threading.get_ident()] * 2


async def test_a_missing_variable_fails_the_task_with_one_line(
    engine: Engine, source: ThreadRecordingSource
) -> None:
    with DAG("missing_var") as dag:
        Echo(task_id="echo", text="{{ var.value.absent }}")
    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    assert "variable 'absent' not found" in str(result.failed)


async def test_loaded_secrets_are_masked_in_logs_rendered_fields_and_errors(
    engine: Engine, source: ThreadRecordingSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection's password (database or environment), a secret-looking variable and
    a sensitive extra, once looked up, never reach a log file, rendered field or error."""
    from airloop.core import masking

    monkeypatch.setenv(
        "AIRLOOP_CONN_ENV_API",
        json.dumps(
            {"conn_type": "http", "password": "env-pass-4711", "extra": {"token": "tk-0815x"}}
        ),
    )
    await source.set_variables([("service_api_key", "key-k3y-value", None)])
    await source.add_connections([Connection("db_api", conn_type="http", password="db-pass-2024")])
    with DAG("masked_lookups") as dag:
        echo = Echo(task_id="echo", text="{{ var.value.service_api_key }}")

        @task
        def leak() -> None:
            stored = BaseHook.get_connection("db_api").password
            env = BaseHook.get_connection("env_api")
            print(f"printed {stored}-pw {env.password} {env.extra_dejson['token']}")
            raise ValueError(f"failed with {Variable.get('service_api_key')} and {env.password}")

        echo >> leak()

    try:
        result = await engine.run(dag)
        assert result.state is DagRunState.FAILED
        error = str(result.failed)
        assert "failed with ***" in error, error
        assert "key-k3y-value" not in error
        assert "env-pass-4711" not in error
        rendered = await engine.store.rendered_fields(result.run_pk, "echo", -1)
        assert rendered is not None
        assert json.loads(rendered.fields) == {"text": "***"}
        paths = {r.task_id: r.path for r in await engine.store.log_paths(result.run_pk)}
        for _ in range(200):  # the log writer thread appends: read until the line is in
            text = await asyncio.to_thread(Path(paths["leak"]).read_text)
            if "printed" in text:
                break
            await asyncio.sleep(0.05)
        assert "printed ***-pw *** ***" in text, text
        for secret in ("db-pass-2024", "env-pass-4711", "tk-0815x", "key-k3y-value"):
            assert secret not in text
    finally:
        masking.MASKER.reset()
