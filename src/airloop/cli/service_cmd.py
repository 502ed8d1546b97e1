"""``airloop scheduler``, ``airloop dags trigger|pause|unpause|list-import-errors``,
``airloop runs list``: the long-running service and the commands that steer it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from airloop.authoring.dag import DAG
from airloop.authoring.params import parse_cli_params
from airloop.cli.common import (
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
from airloop.core.states import DagRunState
from airloop.exceptions import DatabaseError, RunExistsError
from airloop.settings import Settings

if TYPE_CHECKING:
    from airloop.store.scheduler_status import SchedulerStatus
    from airloop.store.service import ServiceStore

scheduler_app = typer.Typer(help="The scheduler service.", invoke_without_command=True)
runs_app = typer.Typer(help="DAG runs.", no_args_is_help=True)

FolderOption = Annotated[
    Path | None, typer.Option("--dags-folder", help="Default: settings dags_folder (<home>/dags).")
]


@scheduler_app.callback()
def scheduler(
    ctx: typer.Context, dags_folder: FolderOption = None, config: ConfigOption = None
) -> None:
    """Run the scheduler service until SIGTERM/SIGINT (twice: at once)."""
    if ctx.invoked_subcommand is not None:
        return
    from airloop.service.scheduler_service import serve_forever

    settings = settings_from(config)
    # A service's log is its output: runs created, started and finished are INFO.
    for handler in logging.getLogger().handlers:
        handler.setLevel(min(handler.level, logging.INFO))
    with bad_input():
        raise typer.Exit(serve_forever(settings, dags_folder))


@scheduler_app.command("status")
def status(
    show_all: Annotated[
        bool,
        typer.Option("--all", help="Also schedulers that stopped or died over a day ago."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Every scheduler on this database: alive or not (on the database's clock), its
    heartbeat's age, DAGs leased, loop lag and running tasks. Exit 0 if one is alive."""
    from airloop.store.runs import Store
    from airloop.store.scheduler_status import heartbeat_limit
    from airloop.store.service import ServiceStore

    settings = settings_from(config)

    async def read() -> list[SchedulerStatus] | None:
        try:
            store = await Store.open(settings.database_url, auto_migrate=False)
        except DatabaseError:
            return None  # no schema yet: no scheduler ever ran here
        try:
            return await ServiceStore(store).schedulers(
                stale_after=heartbeat_limit(settings.scheduler_poll_interval),
                include_old=show_all,
            )
        finally:
            await store.close()

    with bad_input():
        schedulers = asyncio.run(read())
    if not schedulers:
        if schedulers is None:
            out.print("no scheduler has run on this database")
        else:
            out.print("no scheduler has run on this database in the last day (--all: older)")
        raise typer.Exit(EXIT_FAILED)
    table = Table(
        "id", "host", "pid", "state", "mode", "last beat", "alive", "DAGs", "loop lag", "running"
    )
    for s in schedulers:
        row = s.row
        table.add_row(
            str(row.id),
            row.hostname,
            str(row.pid),
            row.state,
            row.mode or "-",
            f"{s.heartbeat_age:.1f}s ago",
            "yes" if s.alive else "no",
            "-" if row.dags_owned is None else str(row.dags_owned),
            "-" if row.loop_lag is None else f"{row.loop_lag * 1000:.1f} ms",
            f"{row.running_tasks or 0} tasks, {row.active_runs or 0} runs",
        )
    # Piped (to a script, a file): wide enough that no cell is folded.
    (out if out.is_terminal else Console(highlight=False, width=200)).print(table)
    alive = sum(1 for s in schedulers if s.alive)
    if alive:
        out.print(f"{alive} of {len(schedulers)} schedulers alive")
    else:
        out.print("no scheduler alive: NOT running")
    raise typer.Exit(EXIT_OK if alive else EXIT_FAILED)


async def _with_store(settings: Settings, action: Any, *, create: bool = False) -> Any:
    """Open the store for one command. Readers never create the schema: that is the
    scheduler's (or 'airloop db migrate''s) job, and two creators would race."""
    from airloop.store.runs import Store
    from airloop.store.service import ServiceStore

    with bad_input():
        store = await Store.open(settings.database_url, auto_migrate=create)
    try:
        return await action(ServiceStore(store))
    finally:
        await store.close()


def _load_dag(settings: Settings, dags_folder: Path | None, dag_id: str) -> DAG:
    """The DAG as the service would load it from its folder (exit 2 if it is not there)."""
    from airloop.service.scheduler_service import folder_of

    folder = folder_of(settings, dags_folder)
    state, _ = asyncio.run(folder.refresh(everything=True))
    dag = state.dags.get(dag_id)
    if dag is None:
        fail(f"no DAG {dag_id!r} in {folder.folder} (see 'airloop dags list {folder.folder}')")
    return dag


def trigger(
    dag_id: Annotated[str, typer.Argument(help="The DAG to run.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    logical_date: LogicalDateOption = None,
    dags_folder: FolderOption = None,
    config: ConfigOption = None,
) -> None:
    """Queue a run (logical date: now, or --logical-date); the scheduler service starts it."""
    settings = settings_from(config)
    when = logical_date_from(logical_date)
    dag = _load_dag(settings, dags_folder, dag_id)
    with bad_input(f"{dag.fileloc}: DAG {dag_id!r}"):
        params = dag.params.resolve(parse_cli_params(param or []), as_text=True)
    rid = run_id or f"manual__{when.isoformat()}"
    try:
        asyncio.run(
            _with_store(settings, lambda s: s.queue_run(dag_id, rid, params, when), create=True)
        )
    except RunExistsError as exc:
        fail(str(exc))
    out.print(f"queued run {rid} of {dag_id}")


def _set_paused(dag_id: str, paused: bool, config: Path | None) -> None:
    settings = settings_from(config)
    found = asyncio.run(_with_store(settings, lambda s: s.set_paused(dag_id, paused)))
    if not found:
        fail(f"no DAG {dag_id!r} known to the scheduler (it records DAGs when it loads them)")
    out.print(f"{dag_id} {'paused' if paused else 'unpaused'}")


def pause(dag_id: str, config: ConfigOption = None) -> None:
    """Stop creating scheduled runs of a DAG (running ones go on)."""
    _set_paused(dag_id, True, config)


def unpause(dag_id: str, config: ConfigOption = None) -> None:
    """Resume creating scheduled runs of a DAG."""
    _set_paused(dag_id, False, config)


def list_import_errors(config: ConfigOption = None) -> None:
    """DAG files the scheduler could not load, with file, line and cause."""
    settings = settings_from(config)
    rows = asyncio.run(_with_store(settings, lambda s: s.import_errors()))
    if not rows:
        out.print("no import errors")
        return
    for row in rows:
        out.print(f"[bold red]{row.message}[/]")
        if row.traceback:
            out.print(row.traceback.rstrip(), markup=False)
    raise typer.Exit(EXIT_FAILED)


@runs_app.command("list")
def list_runs(
    dag_id: Annotated[str | None, typer.Option("--dag-id")] = None,
    state: Annotated[DagRunState | None, typer.Option("--state")] = None,
    config: ConfigOption = None,
) -> None:
    """DAG runs, newest first."""
    settings = settings_from(config)
    rows = asyncio.run(_with_store(settings, lambda s: s.runs(dag_id=dag_id, state=state)))
    table = Table("dag_id", "run_id", "type", "state", "logical date (UTC)", "started", "ended")
    for row in rows:
        table.add_row(
            row.dag_id,
            row.run_id,
            row.run_type,
            row.state,
            f"{row.logical_date:%Y-%m-%d %H:%M:%S}" if row.logical_date else "-",
            f"{row.start_date:%H:%M:%S}" if row.start_date else "",
            f"{row.end_date:%H:%M:%S}" if row.end_date else "",
        )
    out.print(table)


def backfill(
    dag_id: Annotated[str, typer.Argument(help="The DAG.")],
    start: Annotated[datetime, typer.Option("--start", help="First logical date (UTC).")],
    end: Annotated[datetime, typer.Option("--end", help="Last logical date (UTC).")],
    dags_folder: FolderOption = None,
    config: ConfigOption = None,
) -> None:
    """Queue one run per schedule interval between --start and --end (the service runs them)."""
    from airloop.core.schedules import due_intervals

    settings = settings_from(config)
    dag = _load_dag(settings, dags_folder, dag_id)
    if dag.timetable is None:
        fail(f"DAG {dag_id!r} has no schedule: trigger it instead")
    if not dag.timetable.periodic:
        fail(
            f"DAG {dag_id!r} has a {dag.timetable.describe()} schedule: it has no intervals to backfill"
        )
    start, end = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    intervals = due_intervals(
        dag.timetable,
        start_date=start,
        end_date=end,
        after=None,
        now=datetime.now(UTC),
        catchup=True,
    )
    params = dag.params.resolve({})

    async def queue(store: ServiceStore) -> int:
        created = 0
        for interval in intervals:
            try:
                await store.queue_run(
                    dag_id,
                    f"backfill__{interval.start.isoformat()}",
                    params,
                    interval.start,
                    run_type="backfill",
                    data_interval=(interval.start, interval.end),
                )
                created += 1
            except RunExistsError:
                out.print(f"skipped {interval.start:%Y-%m-%d %H:%M}: it already has a run")
        return created

    created = asyncio.run(_with_store(settings, queue, create=True))
    out.print(f"queued {created} backfill runs of {dag_id}")


def clear(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
    ] = None,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Only failed/upstream_failed.")
    ] = False,
    dag_id: Annotated[str | None, typer.Option("--dag-id")] = None,
    config: ConfigOption = None,
) -> None:
    """Run task instances again: they are reset and the scheduler service resumes the run.

    Clearing an ExternalTaskMarker clears the external task it names too (recursively).
    """
    from airloop.service.markers import Cleared, clear_following_markers

    settings = settings_from(config)

    async def go(store: ServiceStore) -> Cleared:
        runs = [r for r in await store.runs(dag_id=dag_id) if r.run_id == run_id]
        if not runs:
            fail(f"no DAG run {run_id!r}")
        if len(runs) > 1:
            fail(f"run id {run_id!r} exists in several DAGs; add --dag-id")
        return await clear_following_markers(store, runs[0], task, failed_only)

    with bad_input():
        cleared = asyncio.run(_with_store(settings, go))
    for i, ((dag, run), count) in enumerate(cleared.counts.items()):
        if i == 0:  # the run asked for, then the markers' runs
            out.print(
                f"cleared {count} task instances of {run_id}; the scheduler service will run them"
            )
        else:
            out.print(f"cleared {count} task instances of {run} of {dag} (ExternalTaskMarker)")
    for note in cleared.notes:
        err.print(f"note: {note}")
