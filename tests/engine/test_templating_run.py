"""Templates rendered in a real run, the context injected into @task, get_current_context()."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.authoring.context import get_current_context
from airloop.engine.engine import Engine

from .support import ti_rows, xcom_map


class Echo(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("sql", "options")
    template_ext: ClassVar[tuple[str, ...]] = (".sql",)

    def __init__(self, *, sql: Any, options: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.options = options

    def execute(self, context: Context) -> Any:
        # The context's task is the rendered copy, as in Airflow.
        assert context["task"] is self
        return {"sql": self.sql, "options": self.options}


async def test_template_fields_are_rendered_before_execute(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "report.sql").write_text("select {{ ti.xcom_pull(task_ids='a') }} -- {{ ds }}")

    with DAG("templated", template_searchpath=str(tmp_path), params={"x": "px"}) as dag:

        @task
        def a() -> int:
            return 41

        echo = Echo(
            task_id="echo",
            sql="report.sql",
            options={"p": "{{ params.x }}", "later": ["{{ macros.ds_add(ds, 7) }}"]},
        )
        a() >> echo

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    row = (await ti_rows(engine, result.run_pk))[("echo", -1)]
    out = json.loads((await xcom_map(engine, result.run_pk))[("echo", -1)])
    ds = row.start_date.strftime("%Y-%m-%d")  # a manual run's logical date is "now"
    assert out["sql"] == f"select 41 -- {ds}"
    assert out["options"]["p"] == "px"
    assert len(out["options"]["later"][0]) == 10
    assert echo.sql == "report.sql"  # the DAG's operator is unchanged


async def test_a_rendering_error_fails_the_try_naming_task_and_field(engine: Engine) -> None:
    with DAG("bad_template") as dag:
        Echo(task_id="echo", sql="{{ not_there }}", retries=0)
    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    assert result.failed == [
        (
            "echo",
            "TemplateRenderError: task 'echo': cannot render template field 'sql': "
            "undefined: 'not_there' is undefined",
        )
    ]


async def test_context_is_injected_by_name_and_as_kwargs(engine: Engine) -> None:
    seen: dict[str, Any] = {}

    with DAG("injected", params={"n": 2}) as dag:

        @task
        def up() -> list[int]:
            return [1, 2]

        @task
        def by_name(values: list[int], ds: str, ti: Any, params: Any, dag_run: Any) -> None:
            seen["by_name"] = (values, ds, ti.xcom_pull(task_ids="up"), params["n"])
            seen["conf"] = dict(dag_run.conf)

        @task
        def everything(**context: Any) -> None:
            seen["keys"] = set(context)
            seen["pulled"] = context["ti"].xcom_pull(task_ids="up")
            seen["ts"] = context["ts"]

        values = up()
        by_name(values)
        values >> everything()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values, ds, pulled, n = seen["by_name"]
    assert values == [1, 2]
    assert pulled == [1, 2]
    assert n == 2
    assert len(ds) == 10
    assert seen["conf"] == {"n": 2}
    assert seen["pulled"] == [1, 2]
    assert {"ds", "ts", "ti", "task_instance", "macros", "dag_run", "params"} <= seen["keys"]
    assert seen["ts"].startswith(ds)


async def test_get_current_context_in_sync_and_async_tasks(engine: Engine) -> None:
    seen: dict[str, Any] = {}

    with DAG("current") as dag:

        @task
        def sync_one() -> None:
            ctx = get_current_context()
            seen["sync"] = (ctx["ti"].task_id, ctx["task"].task_id, ctx["ds"])

        @task
        async def async_one() -> None:
            ctx = get_current_context()
            seen["async"] = (ctx["ti"].task_id, ctx["task"].task_id, ctx["ds"])

        sync_one()
        async_one()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert seen["sync"][:2] == ("sync_one", "sync_one")
    assert seen["async"][:2] == ("async_one", "async_one")
    assert seen["sync"][2] == seen["async"][2]


@pytest.mark.async_executor
async def test_rendering_runs_off_the_event_loop(engine: Engine) -> None:
    """User macros may block and template files are read from disk: never on the loop."""
    loop_thread = threading.current_thread()
    seen: dict[str, Any] = {}

    def where() -> str:
        seen["thread"] = threading.current_thread()
        seen["task"] = get_current_context()["ti"].task_id
        return "here"

    class AsyncEcho(Echo):
        async def execute(self, context: Context) -> Any:  # type: ignore[override]
            return self.sql

    with DAG("off_loop", user_defined_macros={"where": where}) as dag:
        AsyncEcho(task_id="echo", sql="{{ where() }}")

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert seen["thread"] is not loop_thread
    assert seen["task"] == "echo"
