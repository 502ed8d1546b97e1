"""dag.test() / await dag.atest(): one in-process run on a throwaway database;
test_mode in the context; task-level params."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, Param, TaskState, task
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError, ParamValidationError
from airloop.settings import Settings


def _dag(dag_id: str = "local") -> DAG:
    with DAG(dag_id, params={"x": 1}) as dag:

        @task
        def first(params: Any, test_mode: bool, ds: str) -> dict[str, Any]:
            return {"x": params["x"], "test_mode": test_mode, "ds": ds}

        @task
        def double(value: dict[str, Any]) -> int:
            return int(value["x"]) * 2

        @task(retries=0)
        def fails(n: int) -> None:
            raise ValueError(f"no good: {n}")

        fails(double(first()))
    return dag


def test_dag_test_runs_in_process_and_returns_the_results(tmp_path: Path) -> None:
    out = io.StringIO()
    result = _dag().test(
        logical_date=datetime(2026, 4, 5, tzinfo=UTC),
        conf={"x": 2},
        params={"x": 3},
        run_id="try-it",
        settings=Settings(home=tmp_path / "unused"),
        output=out,
    )
    assert result.state is DagRunState.FAILED
    assert not result.ok
    assert result.run_id == "try-it"
    assert result.task_states == {
        "first": TaskState.SUCCESS,
        "double": TaskState.SUCCESS,
        "fails": TaskState.FAILED,
    }
    # params win over conf; test_mode is True in a test run.
    assert result.xcom("first") == {"x": 3, "test_mode": True, "ds": "2026-04-05"}
    assert result.xcom("double") == 6
    failed = next(t for t in result.tasks if t.task_id == "fails")
    assert failed.error == "ValueError: no good: 6"
    assert failed.try_number == 1
    printed = out.getvalue()
    # The end of the failed task's log comes first (the logs go with the temporary folder).
    assert printed.startswith("--- fails try 1 (log) ---\n")
    assert 'raise ValueError(f"no good: {n}")' in printed
    text = printed.splitlines()
    header = text.index(next(line for line in text if line.startswith("task ")))
    assert text[header].split() == ["task", "map", "state", "try", "duration", "error"]
    assert text[header + 3].split()[:3] == ["fails", "failed", "1"]
    assert text[header + 3].endswith("ValueError: no good: 6")
    assert text[-1].startswith(
        "DAG run local/try-it (logical date 2026-04-05T00:00:00+00:00): failed"
    )
    # The throwaway database went with its folder; nothing was written to the settings' home.
    assert not (tmp_path / "unused").exists()


async def test_atest_runs_on_the_callers_loop_and_test_inside_a_loop_says_so(
    tmp_path: Path,
) -> None:
    dag = _dag("local_async")
    with pytest.raises(RuntimeError, match=r"inside a running event loop.*await dag\.atest"):
        dag.test()
    result = await dag.atest(settings=Settings(home=tmp_path), quiet=True)
    assert result.state is DagRunState.FAILED
    assert result.xcom("first")["test_mode"] is True
    assert result.logical_date is not None


def test_dag_test_rejects_a_bad_parameter_before_running(tmp_path: Path) -> None:
    with pytest.raises(ParamValidationError, match="unknown parameter 'y'"):
        _dag("local_bad").test(params={"y": 1}, settings=Settings(home=tmp_path))


async def test_test_mode_is_false_in_a_normal_run(engine: Engine) -> None:
    with DAG("not_a_test") as dag:

        @task
        def mode(test_mode: bool) -> bool:
            return test_mode

        mode()

    result = await engine.run(dag)
    assert result.ok
    assert [x.value for x in await engine.store.xcom_values(result.run_pk)] == ["false"]


class ShowParams(BaseOperator):
    template_fields = ("text",)

    def __init__(self, *, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context: Context) -> Any:
        return {"params": dict(context["params"]), "text": self.text}


async def test_task_level_params_merge_over_the_dags(engine: Engine) -> None:
    with DAG("task_params", params={"a": 1, "b": "dag", "given": 0}) as dag:
        ShowParams(
            task_id="classic",
            text="{{ params.b }}-{{ params.extra }}",
            params={"b": "task", "extra": Param(5, minimum=1), "given": 7},
        )

        @task(params={"a": 10})
        def decorated(params: Any) -> dict[str, Any]:
            return dict(params)

        @task
        def plain(params: Any) -> dict[str, Any]:
            return dict(params)

        decorated()
        plain()

    # "given" is set by the trigger: the run's value wins over the task's (as Airflow).
    result = await engine.run(dag, params={"given": 3})
    assert result.ok, result.failed
    values = {
        x.task_id: json.loads(x.value)
        for x in await engine.store.xcom_values(result.run_pk)
        if x.key == "return_value"
    }
    assert values["classic"] == {
        "params": {"a": 1, "b": "task", "given": 3, "extra": 5},
        "text": "task-5",
    }
    assert values["decorated"] == {"a": 10, "b": "dag", "given": 3}
    assert values["plain"] == {"a": 1, "b": "dag", "given": 3}


def test_task_params_are_validated_like_the_dags() -> None:
    with DAG("bad_task_params", params={"n": Param(1, type="integer")}):
        with pytest.raises(ParamValidationError, match=r"task 'op': parameter 'n'"):
            ShowParams(task_id="op", text="", params={"n": "not a number"})
        with pytest.raises(ParamValidationError, match=r"task 'op2': .*needs a default"):
            ShowParams(task_id="op2", text="", params={"m": Param(type="integer")})
    with pytest.raises(DagDefinitionError, match="params in default_args"):
        DAG("bad_default_params", default_args={"params": {"a": 1}})
