"""What every command shares: exit codes, one-line errors, settings, console logging."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from airloop.core.masking import MASKER, parse_sensitive_names, redact_text, set_sensitive_names
from airloop.core.pools import PoolError
from airloop.exceptions import AirloopError, DagFileError, DatabaseError
from airloop.executors.task_logs import NotInTaskFilter
from airloop.settings import Settings, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Settings file (default: $AIRLOOP_CONFIG or ./airloop.toml)."
    ),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line naming what is wrong, and exit."""
    # The message is text, not markup: "airloop[postgres]" must print as written.
    message = redact_text(message)
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def bad_input(where: str | None = None) -> Iterator[None]:
    """Turn user errors (a bad DAG file, parameter, pool, setting) into exit code 2.

    ``where`` (a file, a DAG) prefixes messages that do not already say where.
    """
    try:
        yield
    except DagFileError as exc:
        fail(str(exc))
    except (AirloopError, PoolError, FileNotFoundError) as exc:
        fail(f"{where}: {exc}" if where else str(exc))
    except DatabaseError as exc:
        fail(str(exc), EXIT_FAILED)


LogicalDateOption = Annotated[
    str | None,
    typer.Option(
        "--logical-date",
        help="The run's logical date, ISO 8601 (no time zone: UTC). Default: now.",
    ),
]


def logical_date_from(text: str | None) -> datetime:
    """A manual run's logical date: ``--logical-date`` (UTC unless it says), else now."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--logical-date {text!r} is not an ISO 8601 date or time (e.g. 2026-05-04T03:00)")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def settings_from(config: Path | None) -> Settings:
    with bad_input():
        settings = load_settings(config)
        # Every command masks with the same names (`tasks test` opens no Engine).
        set_sensitive_names(parse_sensitive_names(settings.sensitive_var_conn_names))
        return settings
    raise AssertionError("unreachable")  # pragma: no cover


def setup_logging(verbose: bool) -> None:
    """Console logging for airloop's own messages; task output goes to task log files."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(
            console=err, show_path=False, show_time=False, rich_tracebacks=False, markup=False
        )
    else:  # one record, one line: no wrapping at 80 columns in CI logs and files
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.addFilter(NotInTaskFilter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)


class RedactingFilter(logging.Filter):
    """Registered secrets become ``***`` in airloop's console messages (ADR 0032)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if MASKER.active:
            message = record.getMessage()
            masked = MASKER.redact_text(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = MASKER.redact_text(
                    logging.Formatter().formatException(record.exc_info)
                )
        return True


def guarded(fn: Callable[[], T]) -> T:
    with bad_input():
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover
