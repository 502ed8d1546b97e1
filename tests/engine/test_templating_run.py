"""Templates rendered in a real run, the context injected into @task, get_current_context()."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.authoring.context import get_current_context
from airloop.engine.engine import Engine
from airloop.exceptions import RunExistsError

from .support import xcom_map


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
    """The done-when case: ds, params, macros, xcom_pull and a .sql file; stored too."""
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

    when = datetime(2026, 3, 1, 6, tzinfo=UTC)
    result = await engine.run(dag, logical_date=when)
    assert result.state is DagRunState.SUCCESS, result.failed
    out = json.loads((await xcom_map(engine, result.run_pk))[("echo", -1)])
    assert out["sql"] == "select 41 -- 2026-03-01"
    assert out["options"] == {"p": "px", "later": ["2026-03-08"]}
    assert echo.sql == "report.sql"  # the DAG's operator is unchanged
    stored = await engine.store.rendered_fields(result.run_pk, "echo", -1)
    assert stored is not None
    assert stored.try_number == 1
    assert json.loads(stored.fields) == {
        "sql": "select 41 -- 2026-03-01",
        "options": {"p": "px", "later": ["2026-03-08"]},
    }
    # Nothing is stored for a task with nothing to render (the lean path).
    assert await engine.store.rendered_fields(result.run_pk, "a", -1) is None


async def test_a_run_without_a_logical_date_has_no_dated_keys(engine: Engine) -> None:
    """As Airflow 3: a run created without a logical date lacks ds & co (absent, not wrong)."""
    seen: dict[str, Any] = {}

    with DAG("undated") as dag:

        @task
        def look(**context: Any) -> None:
            seen["keys"] = set(context)
            seen["test_mode"] = context["test_mode"]

        @task(retries=0)
        def wants_ds(ds: str) -> str:
            return ds

        look()
        wants_ds()

    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    assert "ds" not in seen["keys"]
    assert "logical_date" not in seen["keys"]
    assert "run_id" in seen["keys"]
    assert seen["test_mode"] is False
    assert result.failed == [
        (
            "wants_ds",
            "TypeError: task 'wants_ds': parameter 'ds' needs the run's logical date, and "
            "this run has none (give the run a logical_date)",
        )
    ]
    run = (await engine.store.find_runs(result.run_id))[0]
    assert run.logical_date is None


async def test_one_run_per_dag_and_logical_date(engine: Engine) -> None:
    with DAG("dated") as dag:
        task(lambda: None, task_id="noop")()  # type: ignore[call-arg]

    when = datetime(2026, 1, 2, tzinfo=UTC)
    first = await engine.run(dag, logical_date=when)
    assert first.state is DagRunState.SUCCESS
    with pytest.raises(RunExistsError, match=r"already has a run for logical date 2026-01-02T00"):
        await engine.run(dag, logical_date=when, run_id="another")
    # Runs without a logical date never collide on it.
    assert (await engine.run(dag, run_id="u1")).ok
    assert (await engine.run(dag, run_id="u2")).ok


async def test_templated_task_arguments_are_rendered(engine: Engine) -> None:
    """Strings passed to a @task function are templates (Airflow's op_args/op_kwargs);
    values from upstream outputs are not rendered."""

    with DAG("task_args", params={"who": "me"}) as dag:

        @task
        def up() -> str:
            return "{{ not_rendered }}"

        @task
        def show(day: str, who: str, raw: str, items: list[str]) -> list[str]:
            return [day, who, raw, *items]

        @task
        def plain(text: str) -> str:
            return text

        show("{{ ds }}", who="{{ params.who }}", raw=up(), items=["{{ ds_nodash }}", "x"])
        plain("no markers")

    result = await engine.run(dag, logical_date=datetime(2026, 7, 4, tzinfo=UTC))
    assert result.state is DagRunState.SUCCESS, result.failed
    xcoms = await xcom_map(engine, result.run_pk)
    assert json.loads(xcoms[("show", -1)]) == [
        "2026-07-04",
        "me",
        "{{ not_rendered }}",
        "20260704",
        "x",
    ]
    stored = await engine.store.rendered_fields(result.run_pk, "show", -1)
    assert stored is not None
    assert json.loads(stored.fields) == {
        "op_args": ["2026-07-04"],
        "op_kwargs": {"who": "me", "raw": "{{ not_rendered }}", "items": ["20260704", "x"]},
    }
    assert await engine.store.rendered_fields(result.run_pk, "plain", -1) is None


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

    result = await engine.run(dag, logical_date=datetime(2026, 2, 3, tzinfo=UTC))
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

    result = await engine.run(dag, logical_date=datetime(2026, 2, 3, tzinfo=UTC))
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


async def test_templated_partial_arguments_of_a_mapped_task(engine: Engine) -> None:
    with DAG("mapped_args") as dag:

        @task
        def tag(prefix: str, x: str) -> str:
            return f"{prefix}:{x}"

        tag.partial(prefix="{{ ds_nodash }}").expand(x=["{{ ds }}", "b"])

    result = await engine.run(dag, logical_date=datetime(2026, 8, 9, tzinfo=UTC))
    assert result.state is DagRunState.SUCCESS, result.failed
    xcoms = await xcom_map(engine, result.run_pk)
    # .partial() literals are rendered; .expand() values are passed as given.
    assert json.loads(xcoms[("tag", 0)]) == "20260809:{{ ds }}"
    assert json.loads(xcoms[("tag", 1)]) == "20260809:b"
    stored = await engine.store.rendered_fields(result.run_pk, "tag", 1)
    assert stored is not None
    assert json.loads(stored.fields) == {
        "op_args": [],
        "op_kwargs": {"prefix": "20260809", "x": "b"},
    }
