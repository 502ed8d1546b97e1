"""Templating and the run context, without an engine: render_task on a built context."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airloop import DAG, BaseOperator
from airloop.authoring.context import (
    Context,
    DagRunInfo,
    TaskInstanceInfo,
    XComPullError,
    get_current_context,
)
from airloop.authoring.templating import TemplateRenderError, render_task
from airloop.authoring.xcom import NO_XCOMS, Pushed, TaskXComs
from airloop.authoring.xcom_arg import ValuesLookup
from airloop.exceptions import AirloopError, DagDefinitionError

LOGICAL = datetime(2026, 3, 9, 6, 30, tzinfo=UTC)


class Query(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("sql", "extra")
    template_ext: ClassVar[tuple[str, ...]] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}

    def __init__(self, *, sql: Any, extra: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.extra = extra

    def execute(self, context: Context) -> Any:
        return self.sql


def context_for(
    op: BaseOperator,
    *,
    logical_date: datetime | None = LOGICAL,
    params: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    xcoms: dict[str, TaskXComs] | None = None,
    map_index: int = -1,
) -> Context:
    assert op.dag is not None
    run = DagRunInfo(
        op.dag.dag_id,
        "manual__1",
        logical_date,  # type: ignore[arg-type]  # a run without one (Airflow 3)
        "manual",
        params or {},
    )
    if outputs is not None:
        lookup = ValuesLookup(outputs)
        xcoms = {task_id: lookup.xcoms(task_id) for task_id in outputs}
    ti = TaskInstanceInfo(
        op.dag.dag_id,
        "manual__1",
        op.task_id,
        map_index,
        1,
        1,
        None,
        xcoms=xcoms,
        pushed=Pushed(op.task_id, 1 << 20),
    )
    return Context(dag=op.dag, task=op, ti=ti, dag_run=run, log=logging.getLogger("t"))


def render(op: BaseOperator, **kwargs: Any) -> Any:
    rendered, context = render_task(op, context_for(op, **kwargs))
    assert context.task is rendered
    return rendered


def test_fields_render_ds_params_macros_and_upstream_output() -> None:
    with DAG("d"):
        op = Query(
            task_id="q",
            sql="select '{{ ds }}', {{ params.x }}, '{{ macros.ds_add(ds, 7) }}'",
            extra={"pulled": ["{{ ti.xcom_pull(task_ids='a') }}", ("{{ ds_nodash }}", 3)]},
        )
    out = render(op, params={"x": 42}, outputs={"a": "from-a"})
    assert out.sql == "select '2026-03-09', 42, '2026-03-16'"
    assert out.extra == {"pulled": ["from-a", ("20260309", 3)]}
    assert out.rendered_fields == {"sql": out.sql, "extra": out.extra}
    # The DAG's operator is shared by every run and try: it is never changed.
    assert op.sql.startswith("select '{{ ds }}'")
    assert op.rendered_fields is None


def test_template_file_from_the_searchpath_and_the_dag_folder(tmp_path: Path) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "daily.sql").write_text("select * from t where day = '{{ ds }}'\n")
    (tmp_path / "here.sql").write_text("-- {{ params.who }}")
    with DAG("d", template_searchpath=str(tmp_path / "sql")) as dag:
        from_path = Query(task_id="a", sql="daily.sql")
        beside = Query(task_id="b", sql="here.sql")
        inline = Query(task_id="c", sql="no template file: daily.sql ")
    dag.fileloc = str(tmp_path / "dag.py")
    assert render(from_path).sql == "select * from t where day = '2026-03-09'\n"
    assert render(beside, params={"who": "me"}).sql == "-- me"
    assert render(inline).sql == "no template file: daily.sql "


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("{{ nope }}", "undefined: 'nope' is undefined"),
        ("{{ params.missing }}", "undefined: "),
        ("{% if %}", "syntax error (template, line 1): "),
        ("missing.sql", "template file 'missing.sql' not found"),
    ],
)
def test_a_rendering_error_names_task_field_and_problem(sql: str, problem: str) -> None:
    with DAG("d"):
        op = Query(task_id="q", sql=sql)
    with pytest.raises(TemplateRenderError) as info:
        render(op)
    message = str(info.value)
    assert message.startswith(f"task 'q': cannot render template field 'sql': {problem}")
    assert "\n" not in message


def test_native_rendering_gives_python_objects() -> None:
    with DAG("d", render_template_as_native_obj=True):
        op = Query(task_id="q", sql="{{ [1, 2] + [params.n] }}", extra="{{ params.n + 1 }}")
    out = render(op, params={"n": 3})
    assert out.sql == [1, 2, 3]
    assert out.extra == 4
    for undefined in ("{{ nope }}", "{{ [1, nope] }}", "{{ {'k': nope} }}"):
        with DAG("d", render_template_as_native_obj=True):
            op = Query(task_id="q", sql=undefined)
        with pytest.raises(TemplateRenderError, match="undefined: 'nope' is undefined"):
            render(op)
    with DAG("text"):
        op = Query(task_id="q", sql="{{ [1, 2] }}")
    assert render(op).sql == "[1, 2]"


def test_user_defined_macros_and_filters() -> None:
    with DAG(
        "d",
        user_defined_macros={"env": "prod", "table": lambda n: f"t_{n}"},
        user_defined_filters={"shout": lambda s: s.upper() + "!"},
    ):
        op = Query(task_id="q", sql="{{ env }}.{{ table(3) }} {{ 'hi' | shout }}")
    assert render(op).sql == "prod.t_3 HI!"


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize(
    "sql",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ macros.json.__loader__ }}",
        "{{ task.execute.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_unsafe_attributes(sql: str, native: bool) -> None:
    with DAG("d", render_template_as_native_obj=native):
        op = Query(task_id="q", sql=sql)
    with pytest.raises(TemplateRenderError, match=r"cannot render template field 'sql': .*unsafe"):
        render(op)


def test_template_dag_arguments_are_checked() -> None:
    with pytest.raises(DagDefinitionError, match="template_searchpath must be a folder"):
        DAG("d", template_searchpath=3)
    with pytest.raises(DagDefinitionError, match=r"user_defined_filters\['f'\] is not callable"):
        DAG("d", user_defined_filters={"f": 1})
    with pytest.raises(DagDefinitionError, match="jinja_environment_kwargs: "):
        DAG("d", jinja_environment_kwargs={"no_such_option": 1})
    # Options Jinja knows are passed on.
    with DAG("ok", jinja_environment_kwargs={"trim_blocks": True}):
        op = Query(task_id="q", sql="{% if true %}\nx{% endif %}")
    assert render(op).sql == "x"


def test_operators_without_template_fields_are_not_touched() -> None:
    with DAG("d"):
        op = BaseOperator(task_id="plain")
    assert op.template_fields == ()
    rendered, _ = render_task(op, context_for(op))
    assert rendered.rendered_fields == {}


def test_context_keys_as_airflow() -> None:
    with DAG("d"):
        op = Query(task_id="q", sql="")
    ctx = context_for(op, params={"p": 1})
    assert ctx["ds"] == "2026-03-09"
    assert ctx["ds_nodash"] == "20260309"
    assert ctx["ts"] == "2026-03-09T06:30:00+00:00"
    assert ctx["ts_nodash"] == "20260309T063000"
    assert ctx["ts_nodash_with_tz"] == "20260309T063000+0000"
    assert ctx["logical_date"] == LOGICAL
    assert ctx["task_instance_key_str"] == "d__q__20260309"
    assert ctx["task_instance"] is ctx["ti"]
    assert ctx["ti"].try_number == 1
    assert ctx["ti"].map_index == -1
    assert ctx["dag_run"].conf == {"p": 1}
    assert ctx["dag_run"].run_id == "manual__1"
    assert ctx["dag_run"].logical_date == LOGICAL
    assert ctx["test_mode"] is False
    assert ctx["expanded_ti_count"] is None
    m = ctx["macros"]
    assert m.ds_add("2026-03-09", -9) == "2026-02-28"
    assert m.ds_format("2026-03-09", "%Y-%m-%d", "%d/%m/%Y") == "09/03/2026"
    assert m.datetime(2026, 1, 1) + m.timedelta(days=1) == datetime(2026, 1, 2)
    assert m.dateutil.relativedelta.relativedelta(months=1)
    assert {m.json.__name__, m.time.__name__, m.uuid.__name__, m.random.__name__} == {
        "json",
        "time",
        "uuid",
        "random",
    }
    assert set(ctx) >= {"ds", "ts", "macros", "var", "conn", "params", "dag", "task"}


def test_var_and_conn_without_an_executor_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before an executor installed the lookups (airloop.connections, a higher layer),
    ``var``/``conn`` are present and fail with a clear error when used."""
    from airloop.authoring import context as context_module

    monkeypatch.setattr(context_module, "_VARIABLES", context_module._NotInstalled("Variables"))
    monkeypatch.setattr(context_module, "_CONNECTIONS", context_module._NotInstalled("Connections"))
    with DAG("d"):
        op = Query(task_id="q", sql="{{ var.value.x }}")
    ctx = context_for(op)
    with pytest.raises(AirloopError, match="Variables are only available in task code run by"):
        ctx["var"].value  # noqa: B018
    with pytest.raises(AirloopError, match="Connections are only available in task code"):
        ctx["conn"].my_db  # noqa: B018
    with pytest.raises(TemplateRenderError, match="Variables are only available"):
        render_task(op, ctx)


def test_a_run_without_a_logical_date_has_no_dated_keys() -> None:
    with DAG("d"):
        op = Query(task_id="q", sql="{{ ds }}")
    ctx = context_for(op, logical_date=None)
    dated = {"ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "logical_date"}
    assert not dated & set(ctx)
    assert "task_instance_key_str" not in ctx
    with pytest.raises(KeyError):
        ctx["ds"]
    with pytest.raises(TemplateRenderError, match="undefined: 'ds' is undefined"):
        render_task(op, ctx)


def test_a_mapped_instance_without_its_count_has_no_expanded_ti_count() -> None:
    with DAG("d"):
        op = Query(task_id="q", sql="")
    assert "expanded_ti_count" not in context_for(op, map_index=2)


def test_xcom_pull_reads_upstream_xcoms_and_says_what_it_cannot() -> None:
    with DAG("d"):
        op = Query(task_id="q", sql="")
    m = TaskXComs(
        True,
        {0: {"return_value": "0", "k": '"k0"'}, 1: {}, 2: {"return_value": "2", "k": '"k2"'}},
    )
    a = TaskXComs(False, {-1: {"return_value": "[1]", "k": '{"v":1}'}})
    ti = context_for(op, xcoms={"a": a, "b": NO_XCOMS, "m": m})["ti"]
    assert ti.xcom_pull(task_ids="a") == [1]
    assert ti.xcom_pull(task_ids="a", key="k") == {"v": 1}
    assert ti.xcom_pull(task_ids=["a", "m"]) == [[1], [0, None, 2]]
    assert ti.xcom_pull(task_ids="b", default="dflt") == "dflt"
    assert ti.xcom_pull(task_ids="a", key="return_value") == [1]
    assert ti.xcom_pull(task_ids="a", key="nope", default=5) == 5
    assert ti.xcom_pull(task_ids="m", key="k", map_indexes=2) == "k2"
    assert ti.xcom_pull(task_ids="m", key="k", map_indexes=[2, 1, 0]) == ["k2", None, "k0"]
    assert ti.xcom_pull(task_ids="m", key="k", map_indexes=7, default="d") == "d"
    assert ti.xcom_pull(task_ids=["a", "m"], key="k", map_indexes=[-1, 0]) == [
        {"v": 1},
        None,
        None,
        "k0",
    ]
    assert ti.xcom_pull() is None  # its own return value (Airflow 3's default): none yet
    ti.xcom_push("mine", [1, 2])
    assert ti.xcom_pull(key="mine") == [1, 2]  # what this try pushed so far
    with pytest.raises(XComPullError, match=r"task 'zz' is not upstream of this task"):
        ti.xcom_pull(task_ids="zz")
    with pytest.raises(XComPullError, match="only XComs of the same DAG run"):
        ti.xcom_pull(task_ids="a", include_prior_dates=True)
    no_outputs = context_for(op)["ti"]
    with pytest.raises(XComPullError, match="XComs are not available to this task"):
        no_outputs.xcom_pull(task_ids="a")


def test_get_current_context_outside_a_task_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="get_current_context\\(\\) was called outside"):
        get_current_context()


def test_stored_rendered_fields_are_json_and_cut_at_the_limit() -> None:
    from airloop.authoring.templating import MAX_RENDERED_FIELD_LENGTH, stored_rendered_fields

    assert stored_rendered_fields("t", None) is None
    assert stored_rendered_fields("t", {}) is None
    long = "x" * (MAX_RENDERED_FIELD_LENGTH + 10)
    text = stored_rendered_fields(
        "t", {"short": {"a": (1, 2), "s": {3}}, "long": long, "o": object}
    )
    assert text is not None
    stored = json.loads(text)
    assert stored["short"] == {"a": [1, 2], "s": [3]}
    assert stored["long"].startswith('"xxx')
    assert stored["long"].endswith(
        f"... (truncated: {MAX_RENDERED_FIELD_LENGTH + 12:,} characters, over the limit of "
        f"{MAX_RENDERED_FIELD_LENGTH:,})"
    )
    assert stored["o"] == "<class 'object'>"
