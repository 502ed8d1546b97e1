"""``airloop dags ...``: what is in a DAG file or folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from airloop.authoring.params import parse_cli_params
from airloop.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    ConfigOption,
    LogicalDateOption,
    bad_input,
    err,
    fail,
    logical_date_from,
    out,
    settings_from,
)
from airloop.dagbag.loader import discover, load_dag_file, pick_dag
from airloop.exceptions import DagFileError

app = typer.Typer(help="Inspect DAG files.", no_args_is_help=True)


@app.command("list")
def list_dags(
    path: Annotated[Path, typer.Argument(help="A DAG file or a folder of them.")],
) -> None:
    """List the DAGs in a file or folder; files that fail to load are reported, not fatal."""
    if not path.exists():
        fail(f"{path}: no such file or folder")
    table = Table("dag_id", "tasks", "schedule", "tags", "file")
    errors: list[DagFileError] = []
    for file in discover(path):
        try:
            loaded = load_dag_file(file)
        except DagFileError as exc:
            errors.append(exc)
            continue
        for dag in loaded.dags.values():
            table.add_row(
                dag.dag_id,
                str(len(dag.task_dict)),
                str(dag.schedule) if dag.schedule is not None else "-",
                ", ".join(dag.tags),
                str(file),
            )
    if table.row_count:
        out.print(table)
    elif not errors:
        out.print(f"no DAGs found in {path}")
    for error in errors:
        err.print(f"[bold red]import error:[/] {error}")
    raise typer.Exit(EXIT_BAD_INPUT if errors else EXIT_OK)


def _conf(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"--conf is not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"--conf must be a JSON object, got {type(value).__name__}")
    return value


@app.command("test")
def test_command(
    file: Annotated[Path, typer.Argument(help="The DAG file.")],
    dag_id: Annotated[str, typer.Argument(help="The DAG.")],
    logical_date: LogicalDateOption = None,
    conf: Annotated[
        str | None, typer.Option("--conf", help="The run's parameters as a JSON object.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A run parameter, KEY=VALUE (over --conf)."),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name the run.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run a DAG once in this process on a throwaway database (as 'airflow dags test').

    Exit code 0: the run succeeded, 1: it failed, 2: bad input.
    """
    from airloop.engine.testing import run_dag_test

    settings = settings_from(config)
    when = logical_date_from(logical_date)
    given = _conf(conf)
    with bad_input():
        dag = pick_dag(load_dag_file(file), dag_id)
        given.update(parse_cli_params(param or []))
    with bad_input(f"{file}: DAG {dag_id!r}"):
        result = run_dag_test(dag, logical_date=when, conf=given, run_id=run_id, settings=settings)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)
