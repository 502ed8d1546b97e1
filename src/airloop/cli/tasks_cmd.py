"""``airloop tasks ...``: run one task for debugging; show a run's task instances."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from airloop.authoring.context import DagRunInfo
from airloop.authoring.params import parse_cli_params
from airloop.authoring.xcom_arg import ValuesLookup
from airloop.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    ConfigOption,
    bad_input,
    fail,
    out,
    settings_from,
)
from airloop.cli.run_cmd import STATE_STYLE
from airloop.core.outcomes import Outcome
from airloop.core.states import TaskState
from airloop.dagbag.loader import load_dag_file, pick_dag
from airloop.executors.async_executor import AsyncExecutor
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel, TaskFinished
from airloop.executors.task_logs import StreamSink, task_log_routing
from airloop.store.runs import Store

app = typer.Typer(help="Run or inspect task instances.", no_args_is_help=True)


def _upstream_values(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for task_id, text in parse_cli_params(pairs, "--upstream").items():
        try:
            values[task_id] = json.loads(text)
        except ValueError:
            values[task_id] = text
    return values


@app.command("test")
def task_test_command(
    file: Annotated[Path, typer.Argument(help="The DAG file.")],
    dag_id: Annotated[str, typer.Argument(help="The DAG.")],
    task_id: Annotated[str, typer.Argument(help="The task to run.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE.")] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream", "-u", help="An upstream task's output, TASK_ID=JSON (repeatable)."
        ),
    ] = None,
    map_index: Annotated[
        int, typer.Option("--map-index", help="For a mapped task: which instance.")
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Run one task now, in this process, logging to the console; nothing is recorded."""
    settings = settings_from(config)
    with bad_input():
        dag = pick_dag(load_dag_file(file), dag_id)
    with bad_input(str(file)):
        node = dag.get_task(task_id)
        params = dag.params.resolve(parse_cli_params(param or []), as_text=True)
        given = _upstream_values(upstream or [])
    needed = sorted(op.task_id for op in node.xcom_dependencies())
    missing = [t for t in needed if t not in given]
    if missing:
        fail(
            f"task {task_id!r} needs the output of {', '.join(map(repr, missing))}: "
            f"pass it with --upstream {missing[0]}=JSON"
        )
    index = map_index if node.is_mapped else -1
    with bad_input():
        try:
            operator = node.materialize(index, ValuesLookup(given))
        except (TypeError, IndexError) as exc:
            fail(f"cannot build {task_id!r}: {exc}")
    now = datetime.now(UTC)
    info = DagRunInfo(dag.dag_id, f"test__{now.isoformat()}", now, "test", params)
    item = WorkItem.build(
        dag=dag,
        operator=operator,
        run=info,
        run_pk=0,
        map_index=index,
        try_number=1,
        log_path="-",
        xcom_max_bytes=settings.xcom_max_bytes,
        executor="async",
        bound=None,
    )
    finished = asyncio.run(_run_one(item, settings.sync_threads))
    if finished.outcome is Outcome.SUCCESS:
        value = "null" if finished.xcom is None else finished.xcom
        out.print(
            Text.assemble(
                ("success", "bold green"), f" in {finished.duration or 0:.3f}s, returned: ", value
            )
        )
        for key, text in finished.pushed:
            out.print(f"  XCom {key!r}: {text}")
        raise typer.Exit(EXIT_OK)
    shown = "failed" if not finished.outcome.ok else str(finished.outcome)
    out.print(Text.assemble((shown, "bold red"), ": ", finished.reason or ""))
    raise typer.Exit(EXIT_OK if finished.outcome is Outcome.SKIPPED else EXIT_FAILED)


async def _run_one(item: WorkItem, threads: int) -> TaskFinished:
    channel = OutcomeChannel()
    sink = StreamSink(sys.stderr)
    executor = AsyncExecutor(
        sync_threads=threads, hostname=socket.gethostname(), sink_for=lambda _: sink
    )
    with task_log_routing():
        await executor.start(channel)
        try:
            executor.submit(item)
            while True:
                for event in await channel.take(None):
                    if isinstance(event, TaskFinished):
                        return event
        finally:
            await executor.shutdown(asyncio.get_running_loop().time() + 5)


@app.command("states")
def states(
    run_id: Annotated[str, typer.Argument(help="A run id, or 'latest'.")],
    dag_id: Annotated[
        str | None, typer.Option("--dag-id", help="When several DAGs have this run id.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show the task instances of one DAG run."""
    settings = settings_from(config)
    raise typer.Exit(asyncio.run(_states(settings.database_url, run_id, dag_id)))


async def _states(url: str, run_id: str, dag_id: str | None) -> int:
    with bad_input():
        store = await Store.open(url)
    try:
        if run_id == "latest":
            runs = await store.latest_runs(1, dag_id)
        else:
            runs = await store.find_runs(run_id, dag_id)
        if not runs:
            if run_id == "latest":
                fail("no DAG runs yet" + (f" for DAG {dag_id!r}" if dag_id else ""))
            fail(f"no DAG run {run_id!r}" + (f" for DAG {dag_id!r}" if dag_id else ""))
        if len(runs) > 1:
            ids = ", ".join(r.dag_id for r in runs)
            fail(f"run id {run_id!r} exists in several DAGs ({ids}); add --dag-id")
        run = runs[0]
        tis = await store.task_instances(run.id)
        # Group each task's instances together, tasks in the order they were created.
        first: dict[str, int] = {}
        for ti in tis:
            first.setdefault(ti.task_id, len(first))
        tis.sort(key=lambda ti: (first[ti.task_id], ti.map_index))
    finally:
        await store.close()
    out.print(
        Text.assemble(
            (f"{run.dag_id}/{run.run_id}", "bold"),
            "  ",
            (run.state, "bold"),
            f"  started {run.start_date:%Y-%m-%d %H:%M:%S} UTC" if run.start_date else "",
        )
    )
    table = Table("task", "map", "state", "try", "started (UTC)", "duration", "error")
    for ti in tis:
        state = TaskState(ti.state)
        table.add_row(
            ti.task_id,
            "" if ti.map_index < 0 else str(ti.map_index),
            Text(state.value, style=STATE_STYLE.get(state, "")),
            str(ti.try_number),
            f"{ti.start_date:%H:%M:%S}" if ti.start_date else "",
            f"{ti.duration:.3f}s" if ti.duration is not None else "",
            (ti.error or "").splitlines()[0][:120] if ti.error else "",
        )
    out.print(table)
    return EXIT_OK
