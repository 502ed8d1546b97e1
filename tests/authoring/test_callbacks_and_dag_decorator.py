"""Callbacks and notifiers as a DAG file writes them, and the @dag decorator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import airloop
from airloop import DAG, BaseNotifier, BaseOperator, Context, DagDefinitionError, Param, dag, task
from airloop.authoring.callbacks import CallbackContext
from airloop.dagbag.loader import load_dag_file


def alert(context: Any) -> None: ...


async def async_alert(context: Any) -> None: ...


class Echo(BaseOperator):
    def execute(self, context: Context) -> Any:
        return 1


class Message(BaseNotifier):
    template_fields = ("text", "extra")

    def __init__(self, text: str, extra: dict[str, Any] | None = None) -> None:
        self.text = text
        self.extra = extra or {}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def notify(self, context: Any) -> None:
        self.sent.append((self.text, self.extra))


def test_callbacks_are_settings_from_arguments_default_args_and_task() -> None:
    notifier = Message("x")
    with DAG(
        "d",
        default_args={"on_failure_callback": alert, "on_retry_callback": [alert, async_alert]},
        on_success_callback=[alert, notifier],
        on_failure_callback=async_alert,
    ) as d:
        a = Echo(task_id="a", on_success_callback=notifier)
        b = Echo(task_id="b", on_failure_callback=None)

        @task(on_skipped_callback=alert, on_execute_callback=[async_alert])
        def c() -> None: ...

        c()
    assert a.settings.on_success_callback == (notifier,)
    assert a.settings.on_failure_callback == (alert,)  # from default_args
    assert a.settings.on_retry_callback == (alert, async_alert)
    assert b.settings.on_failure_callback == ()  # explicit None wins over default_args
    c_settings = d.task_dict["c"].settings
    assert c_settings.on_skipped_callback == (alert,)
    assert c_settings.on_execute_callback == (async_alert,)
    assert d.on_success_callback == (alert, notifier)
    assert d.on_failure_callback == (async_alert,)


def test_callbacks_set_after_construction_are_checked_and_used() -> None:
    with DAG("d") as d:
        a = Echo(task_id="a")
    a.on_failure_callback = alert
    d.on_success_callback = [alert, async_alert]
    assert a.settings.on_failure_callback == (alert,) == a.on_failure_callback
    assert d.on_success_callback == (alert, async_alert)
    with pytest.raises(DagDefinitionError, match=r"^task 'a': on_retry_callback must be"):
        a.on_retry_callback = 42


def test_a_callback_that_is_not_callable_is_an_error() -> None:
    with (
        DAG("d"),
        pytest.raises(
            DagDefinitionError,
            match=r"^task 'a': on_success_callback must be a callable, a BaseNotifier or a list",
        ),
    ):
        Echo(task_id="a", on_success_callback="page me")
    with pytest.raises(DagDefinitionError, match=r"^DAG 'e': on_failure_callback must be"):
        DAG("e", on_failure_callback=[alert, 3])


def test_a_notifier_renders_its_template_fields_on_a_copy() -> None:
    with DAG("d", params={"team": "data"}, user_defined_macros={"env": "prod"}) as d:
        pass
    notifier = Message("{{ dag.dag_id }} failed in {{ env }}", {"to": ["{{ params.team }}"]})
    context = CallbackContext({"dag": d, "params": {"team": "data"}})
    notifier(context)
    assert notifier.sent == [("d failed in prod", {"to": ["data"]})]
    assert notifier.text == "{{ dag.dag_id }} failed in {{ env }}"  # the DAG's is unchanged


def test_dag_decorator_builds_a_dag_with_params_from_the_signature() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    @dag(schedule="@daily", start_date=start, params={"limit": Param(10, minimum=1)})
    def etl(source: str = "db", limit: int = 100) -> None:
        """Loads the day's rows."""

        @task
        def extract(source: str, limit: int) -> list[int]:
            return []

        extract(source, limit)

    built = etl()
    assert isinstance(built, DAG)
    assert built.dag_id == "etl"
    assert built.doc == "Loads the day's rows."
    assert built.params["source"].default == "db"
    assert built.params["limit"].default == 100  # the function's default, the Param's schema
    assert built.params["limit"].schema["minimum"] == 1
    assert built.task_ids == ["extract"]
    assert built.fileloc == __file__
    again = etl(source="api")  # arguments given to the call replace the defaults
    assert again.params["source"].default == "api"

    @dag("named", doc_md="# mine")
    def other() -> None: ...

    assert other().dag_id == "named"
    assert other().doc == "# mine"
    assert airloop.dag is dag


def test_dag_decorator_errors() -> None:
    @dag
    def returns() -> int:
        return 1

    with pytest.raises(DagDefinitionError, match="@dag 'returns' returned int 1"):
        returns()

    @dag
    def needs(x: int) -> None: ...

    with pytest.raises(DagDefinitionError, match="@dag 'needs': missing a required argument"):
        needs()


def test_a_decorated_dag_in_a_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "decorated.py"
    path.write_text(
        "from airloop import dag, task\n"
        "@dag\n"
        "def daily(n: int = 3):\n"
        "    @task\n"
        "    def one(): ...\n"
        "    one()\n"
        "daily()\n"
    )
    loaded = load_dag_file(path).dags
    assert list(loaded) == ["daily"]
    assert loaded["daily"].fileloc == str(path)
    assert loaded["daily"].params["n"].default == 3
