"""Per-task-instance log files, written by one background thread.

``logs/<dag>/<run>/<task>[/<map>]/<try>.log``. Log records from task code (any
logger) reach the right file through a context variable set for each task
instance; the file I/O happens on a writer thread, never on the event loop.
Registered secrets are masked there too, per batch of writes (ADR 0032).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from airloop.core.masking import MASKER

_FORMAT = logging.Formatter(
    "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s - %(message)s", "%Y-%m-%dT%H:%M:%S"
)
_FORMAT.converter = time.gmtime


#: (whole second, its text): the last second a line was stamped with. Two lines per
#: try, thousands of tries a second: strftime once a second, not once a line. One
#: tuple, replaced whole, so threads that stamp lines concurrently never see it torn.
_last_second: tuple[int, str] = (-1, "")


def _stamped(level: str, message: str) -> str:
    """``message`` as a log line (with its newline): time (UTC, ms), level, logger."""
    global _last_second
    now = time.time()
    second = int(now)
    cached = _last_second
    if cached[0] == second:
        stamp = cached[1]
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        _last_second = (second, stamp)
    text = f"{stamp}.{int(now % 1 * 1000):03d}Z {level} airloop.task - {message}"
    return text if text.endswith("\n") else text + "\n"


class LogSink:
    """Where one try of one task instance writes its log."""

    __slots__ = ()

    def raw(self, text: str) -> None:
        """Append ``text`` exactly (what the task printed)."""
        raise NotImplementedError

    def write(self, text: str) -> None:
        """Append one record (a newline is added when missing)."""
        self.raw(text if text.endswith("\n") else text + "\n")

    def line(self, level: str, message: str) -> None:
        self.write(_stamped(level, message))


class TaskLogSink(LogSink):
    """A task instance's log file; the writer thread does the I/O."""

    __slots__ = ("_queue", "path")

    def __init__(self, path: str, q: queue.SimpleQueue[tuple[str, str] | None]) -> None:
        self.path = path
        self._queue = q

    def raw(self, text: str) -> None:
        self._queue.put((self.path, text))

    def line(self, level: str, message: str) -> None:
        # The same line as LogSink.line, queued in one call (two lines per try).
        self._queue.put((self.path, _stamped(level, message)))


class StreamSink(LogSink):
    """A text stream (the console, for ``airloop tasks test``)."""

    __slots__ = ("_lock", "_stream")

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def raw(self, text: str) -> None:
        text = MASKER.redact_text(text)
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


current_log_sink: contextvars.ContextVar[LogSink | None] = contextvars.ContextVar(
    "airloop_current_log_sink", default=None
)


def log_path(
    root: Path | str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> str:
    """``<root>/<dag>/<run>/<task>[/<map>]/<try>.log`` (a str: built 10,000s of times a second)."""
    if map_index >= 0:
        return f"{root}/{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log"
    return f"{root}/{dag_id}/{run_id}/{task_id}/{try_number}.log"


class TaskLogHandler(logging.Handler):
    """Sends records emitted while a task instance runs to that task instance's file."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        sink = current_log_sink.get()
        if sink is None:
            return
        try:
            sink.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the task
            self.handleError(record)


class NotInTaskFilter(logging.Filter):
    """For console handlers: keep task instances' records out of the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return current_log_sink.get() is None


class _TaskAwareStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: what a task prints goes to its log."""

    def __init__(self, wrapped: TextIO) -> None:
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        sink = current_log_sink.get()
        if sink is None:
            return self.wrapped.write(text)
        sink.raw(text)
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class _Routing:
    """One TaskLogHandler on the root logger however many engines are open.

    The root logger is process-wide, so this is too: each engine takes a reference
    and the handler is removed when the last one is released.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._handler = TaskLogHandler()

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                logging.getLogger().addHandler(self._handler)
                sys.stdout = _TaskAwareStream(sys.stdout)
                sys.stderr = _TaskAwareStream(sys.stderr)
                task_logger = logging.getLogger("airloop.task")
                if task_logger.level == logging.NOTSET:
                    task_logger.setLevel(logging.INFO)
            self._users += 1

    def rewrap(self) -> None:
        """Route the streams again if something replaced them since ``acquire``.

        Whatever swaps sys.stdout while an engine is open (pytest's capture between test
        phases, a library redirecting output) would otherwise send every later task's
        print() to the console: checked when each task instance starts.
        """
        if isinstance(sys.stdout, _TaskAwareStream) and isinstance(sys.stderr, _TaskAwareStream):
            return
        with self._lock:
            if self._users == 0:
                return
            if not isinstance(sys.stdout, _TaskAwareStream):
                sys.stdout = _TaskAwareStream(sys.stdout)
            if not isinstance(sys.stderr, _TaskAwareStream):
                sys.stderr = _TaskAwareStream(sys.stderr)

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                logging.getLogger().removeHandler(self._handler)
                if isinstance(sys.stdout, _TaskAwareStream):
                    sys.stdout = sys.stdout.wrapped
                if isinstance(sys.stderr, _TaskAwareStream):
                    sys.stderr = sys.stderr.wrapped


_ROUTING = _Routing()


@contextlib.contextmanager
def task_log_routing() -> Iterator[None]:
    """Route log records emitted by task code to the task's sink while this is open."""
    _ROUTING.acquire()
    try:
        yield
    finally:
        _ROUTING.release()


def keep_streams_routed() -> None:
    """Called as a task instance starts: print() keeps reaching task logs (see rewrap)."""
    _ROUTING.rewrap()


class TaskLogWriter:
    """The thread that owns every task log file, and the routing of records to it."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="airloop-task-logs", daemon=True)
        self._routing = task_log_routing()
        self._made: set[str] = set()
        self.errors = 0

    def start(self) -> None:
        self._thread.start()
        self._routing.__enter__()

    def sink(self, path: str) -> TaskLogSink:
        return TaskLogSink(path, self._queue)

    def _run(self) -> None:
        log = logging.getLogger(__name__)
        stop = False
        while not stop:
            pending: dict[str, list[str]] = defaultdict(list)
            item = self._queue.get()
            while True:
                if item is None:
                    stop = True
                else:
                    pending[item[0]].append(item[1])
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            for path, lines in pending.items():
                try:
                    folder = os.path.dirname(path)
                    if folder not in self._made:
                        os.makedirs(folder, exist_ok=True)
                        self._made.add(folder)
                    with open(path, "a", encoding="utf-8") as fh:
                        if MASKER.active:  # secrets masked here, off the loop (ADR 0032)
                            fh.write(MASKER.redact_text("".join(lines)))
                        else:
                            fh.writelines(lines)
                except OSError as exc:
                    self.errors += 1
                    log.error("cannot write task log %s: %s", path, exc)

    def close(self) -> None:
        """Flush everything queued and stop (blocks: call it off the loop)."""
        self._routing.__exit__(None, None, None)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
