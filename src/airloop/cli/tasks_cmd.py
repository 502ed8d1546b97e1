"""``airloop tasks ...``: run one task for debugging; show a run's task instances."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from airloop.exceptions import FailTask
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel, TaskFinished
from airloop.executors.task_logs import StreamSink, task_log_routing

if TYPE_CHECKING:
    from airloop.store.records import DagRunRow
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
        except (TypeError, IndexError, FailTask) as exc:
            fail(f"cannot build {task_id!r}: {exc}")
    now = datetime.now(UTC)
    info = DagRunInfo(dag.dag_id, f"test__{now.isoformat()}", now, "test", params, test_mode=True)
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
    finished = asyncio.run(_run_one(item, settings.sync_threads, settings.callback_timeout))
    if finished.outcome is Outcome.SUCCESS:
        value = "null" if finished.xcom is None else finished.xcom
        out.print(
            Text.assemble(
                ("success", "bold green"), f" in {finished.duration or 0:.3f}s, returned: ", value
            )
        )
        for key, text in finished.pushed:
            out.print(f"  XCom {key!r}: {text}")
        if finished.skip_downstream:  # a branch or a short circuit decided
            out.print(f"skips downstream: {', '.join(finished.skip_downstream)}")
        raise typer.Exit(EXIT_OK)
    shown = "failed" if not finished.outcome.ok else str(finished.outcome)
    out.print(Text.assemble((shown, "bold red"), ": ", finished.reason or ""))
    raise typer.Exit(EXIT_OK if finished.outcome is Outcome.SKIPPED else EXIT_FAILED)


async def _run_one(item: WorkItem, threads: int, callback_timeout: float) -> TaskFinished:
    from airloop.executors.async_executor import AsyncExecutor

    channel = OutcomeChannel()
    sink = StreamSink(sys.stderr)
    executor = AsyncExecutor(
        sync_threads=threads,
        hostname=socket.gethostname(),
        sink_for=lambda _: sink,
        callback_timeout=callback_timeout,
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
            # The task's callbacks run after its outcome: they get their time limit.
            await executor.shutdown(asyncio.get_running_loop().time() + callback_timeout)


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


async def _find_run(store: Store, run_id: str, dag_id: str | None) -> DagRunRow:
    """The run named ``run_id`` (or the latest), or a one-line error (exit 2)."""
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
    return runs[0]


@app.command("render")
def render(
    run_id: Annotated[str, typer.Argument(help="A run id, or 'latest'.")],
    task_id: Annotated[str, typer.Argument(help="The task.")],
    map_index: Annotated[
        int, typer.Option("--map-index", help="For a mapped task: which instance.")
    ] = -1,
    try_number: Annotated[
        int | None, typer.Option("--try", help="Which try (default: the latest rendered).")
    ] = None,
    dag_id: Annotated[
        str | None, typer.Option("--dag-id", help="When several DAGs have this run id.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show what a task instance's template fields rendered to (as recorded)."""
    settings = settings_from(config)
    raise typer.Exit(
        asyncio.run(_render(settings.database_url, run_id, task_id, map_index, try_number, dag_id))
    )


async def _render(
    url: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int | None,
    dag_id: str | None,
) -> int:
    if try_number is not None and try_number < 1:
        fail(f"--try must be 1 or more, got {try_number}")
    from airloop.store.runs import Store

    with bad_input():
        store = await Store.open(url)
    try:
        run = await _find_run(store, run_id, dag_id)
        tis = {(ti.task_id, ti.map_index) for ti in await store.task_instances(run.id)}
        where = f"run {run.run_id!r} of DAG {run.dag_id!r}"
        if not any(t == task_id for t, _ in tis):
            fail(f"{where} has no task {task_id!r}")
        if (task_id, map_index) not in tis:
            indexes = sorted(i for t, i in tis if t == task_id)
            shown = "none (not mapped)" if indexes == [-1] else f"0..{indexes[-1]}"
            fail(f"task {task_id!r} in {where} has no map index {map_index} (it has {shown})")
        row = await store.rendered_fields(run.id, task_id, map_index, try_number)
    finally:
        await store.close()
    label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
    if row is None:
        which = f"try {try_number}" if try_number is not None else "any try"
        fail(
            f"{label} in {where}: nothing rendered recorded for {which} (no templates, or not run)"
        )
    out.print(
        Text.assemble((f"{run.dag_id}/{run.run_id} {label}", "bold"), f" try {row.try_number}")
    )
    for name, value in json.loads(row.fields).items():
        out.print(Text(f"# {name}", style="bold cyan"))
        out.print(value if isinstance(value, str) else json.dumps(value, indent=2), markup=False)
    return EXIT_OK


async def _states(url: str, run_id: str, dag_id: str | None) -> int:
    from airloop.store.runs import Store

    with bad_input():
        store = await Store.open(url)
    try:
        run = await _find_run(store, run_id, dag_id)
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
    # A mapped instance's map_index_template label, when any has one.
    labels = any(ti.rendered_map_index for ti in tis)
    columns = ["task", "map", *(["label"] if labels else []), "state", "try"]
    table = Table(*columns, "started (UTC)", "duration", "error")
    for ti in tis:
        state = TaskState(ti.state)
        table.add_row(
            ti.task_id,
            "" if ti.map_index < 0 else str(ti.map_index),
            *([ti.rendered_map_index or ""] if labels else []),
            Text(state.value, style=STATE_STYLE.get(state, "")),
            str(ti.try_number),
            f"{ti.start_date:%H:%M:%S}" if ti.start_date else "",
            f"{ti.duration:.3f}s" if ti.duration is not None else "",
            (ti.error or "").splitlines()[0][:120] if ti.error else "",
        )
    out.print(table)
    return EXIT_OK
