"""``{{ var... }}`` / ``{{ conn... }}`` with the accessors the executors install."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from airloop import DAG, BaseOperator
from airloop.authoring.context import Context, DagRunInfo, TaskInstanceInfo
from airloop.authoring.templating import TemplateRenderError, render_task
from airloop.connections import ConnectionNotFound, set_sources
from airloop.connections.sources import EnvironmentSource
from airloop.executors import runner  # installs the accessors, as in every worker

ENV = {
    "AIRLOOP_VAR_TABLE": "events",
    "AIRLOOP_VAR_CFG": '{"limit": 3, "cols": ["a", "b"]}',
    "AIRLOOP_CONN_MY_DB": "postgres://etl:pw@db.local:5432/wh?sslmode=require",
}


class Query(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("sql",)

    def __init__(self, *, sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql

    def execute(self, context: Any) -> Any:
        return self.sql


@pytest.fixture(autouse=True)
def _environment_only() -> Iterator[None]:
    assert runner.install_lookups is not None
    set_sources([EnvironmentSource(ENV)])
    yield
    set_sources(None)


def render(template: str) -> Any:
    import logging

    with DAG("d"):
        op = Query(task_id="q", sql=template)
    ti = TaskInstanceInfo("d", "r", "q", -1, 1, 1, None)
    run = DagRunInfo("d", "r", None, "manual", {})
    ctx = Context(dag=op.dag, task=op, ti=ti, dag_run=run, log=logging.getLogger("t"))
    rendered, _ = render_task(op, ctx)
    return rendered.sql


def test_variables_and_connections_in_templates() -> None:
    assert render("{{ var.value.table }}") == "events"
    assert render("{{ var.json.cfg.cols[1] }}:{{ var.json.cfg['limit'] }}") == "b:3"
    assert render("{{ var.value.get('nope', 'fallback') }}") == "fallback"
    assert render("{{ conn.my_db.host }}:{{ conn.my_db.port }}") == "db.local:5432"
    assert render("{{ conn.my_db.extra_dejson.sslmode }}") == "require"
    assert render("{{ conn.get('absent') }}") == "None"


def test_a_missing_variable_or_connection_is_a_clear_render_error() -> None:
    with pytest.raises(TemplateRenderError, match="variable 'absent' not found"):
        render("{{ var.value.absent }}")
    with pytest.raises(TemplateRenderError, match="connection 'absent' not found"):
        render("{{ conn.absent.host }}")


def test_the_accessors_in_code() -> None:
    from airloop.connections.accessors import ConnectionAccessor, VariableAccessor

    var, conn = VariableAccessor(), ConnectionAccessor()
    assert var.value["table"] == "events"
    assert var.json.get("cfg")["limit"] == 3
    assert conn["my_db"].login == "etl"
    with pytest.raises(ConnectionNotFound):
        conn["absent"]


def test_top_level_exports_do_not_import_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airloop\n"
        "assert airloop.Variable.__name__ == 'Variable'\n"
        "assert airloop.Connection.__name__ == 'Connection'\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
