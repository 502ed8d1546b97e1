"""``airloop run FILE``: one DAG run to completion, with live progress and a summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

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
from airloop.core.states import TERMINAL, TaskState
from airloop.dagbag.loader import load_dag_file, pick_dag
from airloop.settings import Settings

if TYPE_CHECKING:
    from airloop.engine.active_run import ActiveRun, RunResult

STATE_STYLE = {
    TaskState.SUCCESS: "green",
    TaskState.FAILED: "red",
    TaskState.UPSTREAM_FAILED: "dark_orange",
    TaskState.SKIPPED: "magenta",
    TaskState.RUNNING: "cyan",
    TaskState.QUEUED: "blue",
    TaskState.UP_FOR_RETRY: "yellow",
    TaskState.SCHEDULED: "white",
    TaskState.NONE: "dim",
}
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _counts_text(counts: dict[TaskState, int]) -> Text:
    text = Text()
    for state in STATE_STYLE:
        n = counts.get(state, 0)
        if n:
            if text:
                text.append("  ")
            text.append(f"{state.value} {n:,}", style=STATE_STYLE[state])
    return text


class Progress:
    """Live counts by state: redrawn on a terminal, a line every few seconds elsewhere."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.live: Live | None = None
        self._last = 0.0
        self._interval = 0.1 if err.is_terminal else 5.0
        self._t0 = time.monotonic()

    def __enter__(self) -> Progress:
        if err.is_terminal:
            self.live = Live(console=err, auto_refresh=False, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, run: ActiveRun, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        counts = run.counts()
        total = sum(counts.values())
        done = sum(n for s, n in counts.items() if s in TERMINAL)
        elapsed = now - self._t0
        if self.live is not None:
            bar = ProgressBar(total=max(total, 1), completed=done, width=40)
            grid = Table.grid()
            grid.add_row(Text(f"{self.label}  {done:,}/{total:,} done  {elapsed:.1f}s  "), bar)
            self.live.update(Group(grid, _counts_text(counts)))
            self.live.refresh()
        else:
            err.print(f"{self.label}: {done:,}/{total:,} done after {elapsed:.0f}s - ", end="")
            err.print(_counts_text(counts))


def print_summary(result: RunResult, logs_root: Path) -> None:
    style = "green" if result.ok else "red"
    out.print(
        Text.assemble(
            ("Run ", ""),
            (f"{result.dag_id}/{result.run_id}", "bold"),
            (" ", ""),
            (result.state.value, f"bold {style}"),
            (f" in {result.duration:.2f}s", ""),
        )
    )
    counts = {TaskState(k): v for k, v in result.counts.items()}
    out.print(Text("  ").append_text(_counts_text(counts)))
    if result.interrupted:
        out.print(f"  interrupted: {result.interrupted}")
    if result.failed:
        out.print(f"Failed tasks ({len(result.failed)}):")
        for label, error in result.failed[:20]:
            out.print(
                Text.assemble(
                    "  ", (label, "bold red"), "  ", error.splitlines()[0] if error else ""
                )
            )
        if len(result.failed) > 20:
            out.print(f"  ... and {len(result.failed) - 20} more")
    out.print(f"Logs: {logs_root / result.dag_id / result.run_id}")


async def _execute(
    dag: DAG,
    params: dict[str, Any],
    settings: Settings,
    run_id: str | None,
    where: str,
    resume: bool = False,
    logical_date: datetime | None = None,
) -> int:
    from airloop.engine.engine import Engine

    loop = asyncio.get_running_loop()
    received: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        progress = stack.enter_context(Progress(dag.dag_id))
        with bad_input():  # e.g. a database that cannot be opened: not the DAG file's fault
            engine = await stack.enter_async_context(Engine(settings))

        def on_signal(name: str) -> None:
            if received:
                err.print(f"\n{name} again: exiting at once")
                os._exit(SIGNAL_EXIT.get(name, 1))
            received.append(name)
            err.print(
                f"\n{name} received: stopping (up to {settings.shutdown_grace_seconds:g}s; "
                "again to exit at once)"
            )
            engine.request_shutdown(f"{name} received")

        for sig in SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig.name)

        def remove_handlers() -> None:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)

        stack.callback(remove_handlers)
        with bad_input(where):
            run = await engine.start_run(
                dag, params, run_id=run_id, resume=resume, logical_date=logical_date
            )
        run.subscribe(lambda r: progress.update(r, force=r.finished))
        result = await run.done
    print_summary(result, settings.logs_path)
    if received:
        code = SIGNAL_EXIT.get(received[0], EXIT_FAILED)
    else:
        code = EXIT_OK if result.ok else EXIT_FAILED
    if engine.abandoned:
        # A task ignored cancellation; asyncio.run() would wait for it forever while
        # cleaning up. Everything is recorded and flushed: leave now.
        err.print(f"{engine.abandoned} task(s) ignored cancellation; exiting without them")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def run_command(
    file: Annotated[Path, typer.Argument(help="A DAG file.")],
    dag_id: Annotated[
        str | None, typer.Option("--dag-id", help="Which DAG, when the file has several.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A run parameter, KEY=VALUE (repeatable)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name the run (default: manual__<time>).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Carry on the unfinished run --run-id (after a crash)."),
    ] = False,
    logical_date: LogicalDateOption = None,
    config: ConfigOption = None,
) -> None:
    """Run one DAG run to completion. Exit code 0: success, 1: failed, 2: bad input."""
    settings = settings_from(config)
    when = logical_date_from(logical_date)
    with bad_input():
        dag = pick_dag(load_dag_file(file), dag_id)
    with bad_input(f"{file}: DAG {dag.dag_id!r}"):
        params = dag.params.resolve(parse_cli_params(param or []), as_text=True)
    # A signal from here on is handled by the engine (stop gracefully, exit 130/143).
    if resume and run_id is None:
        fail("--resume needs the --run-id of the run to carry on")
    if resume and logical_date is not None:
        fail("--resume carries on a run with the logical date it has: drop --logical-date")
    raise typer.Exit(
        asyncio.run(
            _execute(dag, params, settings, run_id, str(file), resume, None if resume else when)
        )
    )
