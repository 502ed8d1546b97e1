"""Airflow arguments airloop does not implement yet are errors, never silently ignored.

A value that changes nothing (Airflow's default: ``email_on_failure=False``,
``email=None``...) is accepted, so migrated DAGs that spell defaults
out still load. Descriptive arguments (``owner``, ``doc_md``...) are stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, BaseOperator, BaseSensor, Context, DagDefinitionError, task
from airloop.dagbag.loader import load_dag_file
from airloop.exceptions import DagFileError


class Echo(BaseOperator):
    def __init__(self, *, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def execute(self, context: Context) -> Any:
        return self.value


class Waiter(BaseSensor):
    def poke(self, context: Context) -> bool:
        return True


def alert(context: Any) -> None:
    """A callback a user expects to be called."""


#: (argument, a value that would change behaviour in Airflow)
UNSUPPORTED_TASK_ARGS: list[tuple[str, Any]] = [
    ("email", ["ops@example.org"]),
    ("email_on_failure", True),
    ("email_on_retry", True),
    ("queue", "gpu"),
    ("sla", 60),
    ("run_as_user", "etl"),
    ("executor_config", {"KubernetesExecutor": {}}),
    ("outlets", ["s3://bucket/key"]),
    ("inlets", ["s3://bucket/key"]),
    ("pre_execute", alert),
    ("post_execute", alert),
    ("start_date", datetime(2020, 1, 1, tzinfo=UTC)),
    ("end_date", datetime(2030, 1, 1, tzinfo=UTC)),
]
#: The same arguments with a value that changes nothing: accepted.
NOOP_TASK_ARGS: dict[str, Any] = {
    "on_failure_callback": None,
    "on_success_callback": [],
    "on_retry_callback": None,
    "on_execute_callback": None,
    "on_skipped_callback": None,
    "depends_on_past": False,
    "wait_for_downstream": False,
    "ignore_first_depends_on_past": True,
    "email": None,
    "email_on_failure": False,
    "email_on_retry": False,
    "max_active_tis_per_dag": None,
    "queue": "default",
    "sla": None,
    "run_as_user": None,
    "executor_config": {},
    "outlets": [],
    "start_date": None,
}


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED_TASK_ARGS)
def test_operator_argument_not_supported_yet(name: str, value: Any) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError) as info:
        Echo(task_id="t", **{name: value})
    assert str(info.value).startswith(f"task 't': {name}=")
    assert "is not supported yet" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    # default_args start_date/end_date are the DAG's (tested below).
    [(n, v) for n, v in UNSUPPORTED_TASK_ARGS if n not in ("start_date", "end_date")],
)
def test_default_args_not_supported_yet(name: str, value: Any) -> None:
    with pytest.raises(DagDefinitionError) as info:
        DAG("d", default_args={name: value})
    assert str(info.value).startswith(f"DAG 'd': default_args: {name}=")
    assert "is not supported yet" in str(info.value)


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED_TASK_ARGS)
def test_task_decorator_argument_not_supported_yet(name: str, value: Any) -> None:
    with pytest.raises(DagDefinitionError) as info:

        @task(**{name: value})
        def work() -> None: ...

    assert str(info.value).startswith(f"@task 'work': {name}=")
    assert "is not supported yet" in str(info.value)


def test_mapped_tasks_check_their_partial_arguments_when_defined() -> None:
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match="task 'm': sla=60 is not supported yet"):
            Echo.partial(task_id="m", sla=60).expand(value=[1, 2])

        @task
        def double(x: int) -> int:
            return 2 * x

        with pytest.raises(
            DagDefinitionError, match=r"task 'double': post_execute=.* is not supported yet"
        ):
            double.partial(post_execute=alert).expand(x=[1, 2])
        # The no-op spelling is accepted and not passed to the function.
        double.partial(depends_on_past=False).expand(x=[1, 2])
        Echo.partial(task_id="ok", depends_on_past=False, owner="data").expand(value=[1])


def test_no_op_values_are_accepted_everywhere() -> None:
    with DAG("d", default_args=NOOP_TASK_ARGS) as dag:
        a = Echo(task_id="a", **NOOP_TASK_ARGS)

        @task(**NOOP_TASK_ARGS)
        def b() -> None: ...

        b()
    assert dag.task_ids == ["a", "b"]
    assert a.settings.retries == 0


def test_descriptive_arguments_are_stored() -> None:
    with DAG(
        "d",
        doc_md="# Sales",
        dag_display_name="Sales",
        owner_links={"data": "https://example.org"},
        default_args={"owner": "data"},
    ) as dag:
        a = Echo(task_id="a", doc_md="does a", task_display_name="A")
        b = Echo(task_id="b", owner="ops")
    assert dag.doc == "# Sales"
    assert dag.display["dag_display_name"] == "Sales"
    assert a.owner == "data"
    assert b.owner == "ops"
    assert a.display["doc_md"] == "does a"
    assert a.display["task_display_name"] == "A"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sla_miss_callback", alert),
        ("access_control", {"role": {"can_read"}}),
        ("is_paused_upon_creation", True),
        ("max_consecutive_failed_dag_runs", 3),
    ],
)
def test_dag_argument_not_supported_yet(name: str, value: Any) -> None:
    with pytest.raises(DagDefinitionError) as info:
        DAG("d", **{name: value})
    assert str(info.value).startswith(f"DAG 'd': {name}=")
    assert "is not supported yet" in str(info.value)
    DAG("ok", **{name: None})  # the no-op value is accepted


def test_sensor_modes() -> None:
    with DAG("d"):
        Waiter(task_id="poke", mode="poke", deferrable=False)
        with pytest.raises(
            DagDefinitionError, match="task 'r': mode='reschedule' is not supported yet"
        ):
            Waiter(task_id="r", mode="reschedule")
        with pytest.raises(
            DagDefinitionError, match="task 'd': deferrable=True is not supported yet"
        ):
            Waiter(task_id="d", deferrable=True)


def test_unknown_arguments_still_get_a_suggestion() -> None:
    with DAG("d"):
        with pytest.raises(
            DagDefinitionError,
            match=r"^task 'a': unknown argument 'retires' \(did you mean 'retries'\?\)",
        ):
            Echo(task_id="a", retires=2)
        with pytest.raises(DagDefinitionError, match=r"^task 'b': unknown argument 'colour'"):
            Echo(task_id="b", colour="red")
    with pytest.raises(
        DagDefinitionError,
        match=r"^DAG 'e': unknown argument 'schedul' \(did you mean 'schedule'\?\)",
    ):
        DAG("e", schedul="@daily")
    with pytest.raises(DagDefinitionError, match=r"did you mean 'depends_on_past'\?"):
        DAG("f", default_args={"depend_on_past": False})


def test_default_args_start_date_is_the_dags_as_in_airflow() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    dag = DAG("d", schedule="@daily", default_args={"start_date": start})
    assert dag.start_date == start
    with pytest.raises(DagDefinitionError, match="per-task start_date is not supported yet"):
        DAG("e", start_date=start, default_args={"start_date": datetime(2025, 1, 1, tzinfo=UTC)})
    with DAG("f", start_date=start):
        Echo(task_id="same", start_date=start)  # equal to the DAG's: changes nothing


def test_error_in_a_dag_file_names_file_line_and_argument(tmp_path: Path) -> None:
    path = tmp_path / "alerts.py"
    path.write_text(
        "from airloop import DAG, task\n"
        "def page(context): ...\n"
        "with DAG('alerts', default_args={'retries': 1}):\n"
        "    @task(pre_execute=page)\n"
        "    def load(): ...\n"
        "    load()\n"
    )
    with pytest.raises(DagFileError) as info:
        load_dag_file(path)
    assert str(info.value).startswith(
        f"{path}:4: DagDefinitionError: @task 'load': pre_execute=<function page"
    )
    assert "is not supported yet" in str(info.value)


def test_task_concurrency_is_the_old_name_of_max_active_tis_per_dag() -> None:
    with DAG("d"):

        @task(task_concurrency=3)
        def t() -> None: ...

        with pytest.warns(DeprecationWarning, match="task_concurrency is deprecated"):
            node = t()
    assert node.operator.settings.max_active_tis_per_dag == 3


def test_run_semantics_arguments_are_checked_where_given() -> None:
    with DAG("d"):
        with pytest.raises(DagDefinitionError, match="task 't': max_active_tis_per_dagrun must"):
            Echo(task_id="t", max_active_tis_per_dagrun=0)
        with pytest.raises(DagDefinitionError, match="task 'u': depends_on_past must be True"):
            Echo(task_id="u", depends_on_past="yes")
        with (
            pytest.warns(DeprecationWarning, match="task_concurrency"),
            pytest.raises(DagDefinitionError, match="disagree"),
        ):
            Echo(task_id="v", task_concurrency=1, max_active_tis_per_dag=2)


def test_continuous_needs_max_active_runs_of_one() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(
        DagDefinitionError,
        match=r"invalid max_active_runs=16: schedule '@continuous' requires max_active_runs <= 1",
    ):
        DAG("loop", schedule="@continuous", start_date=start)
    assert DAG("loop", schedule="@continuous", start_date=start, max_active_runs=1).timetable


def test_run_semantics_arguments_from_default_args() -> None:
    defaults = {"depends_on_past": True, "max_active_tis_per_dagrun": 2}
    with DAG("d", default_args=defaults):
        echo = Echo(task_id="t", wait_for_downstream=True)
    settings = echo.settings
    assert settings.depends_on_past
    assert settings.wait_for_downstream
    assert not settings.ignore_first_depends_on_past
    assert (settings.max_active_tis_per_dagrun, settings.max_active_tis_per_dag) == (2, None)
