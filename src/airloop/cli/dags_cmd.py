"""``airloop dags ...``: what is in a DAG file or folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from airloop.cli.common import EXIT_BAD_INPUT, EXIT_OK, err, fail, out
from airloop.dagbag.loader import discover, load_dag_file
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
