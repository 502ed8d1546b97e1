"""The blocked-loop watchdog: measures event-loop lag and names what blocked it.

A thread pings the loop (``call_soon_threadsafe``) every ``interval`` seconds. When a
ping is not answered within ``threshold`` the loop is blocked right now, so the
watchdog samples the loop thread's stack and the current asyncio task and, once the
loop answers, logs how long it was blocked and by what. Catching it in the act is
what makes the culprit nameable; a lag measured afterwards could not say who.

Who is to blame is read from the stack, innermost frame first (``classify``), down to
the loop's callback dispatcher (``asyncio.events:_run``; below it is only whoever
started the loop, such as the CLI's ``asyncio.run``): library frames (the standard
library, installed packages) are skipped; the first
frame of user code (a DAG file, the user's modules) running as task code blames the
task instance and advises making it a sync task; the first frame of airloop's own
code -- or of code airloop called outside any task (the scheduler's asyncio task is
"airloop-scheduler") -- means airloop blocked its loop: that is reported as
airloop's, naming the place, with no advice to the user. ``Runner.run`` is the
border: what it calls is task code, even when all of it lies in installed packages.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Literal

from airloop.core.stats import FAST_BUCKETS, Histogram

log = logging.getLogger(__name__)

Cause = Literal["task", "airloop", "library"]

#: Where the standard library and installed packages live (their frames are skipped).
_LIBRARY_PATHS = tuple(
    sorted(
        {
            sysconfig.get_paths()[key]
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if key in sysconfig.get_paths()
        }
    )
)


@dataclass(frozen=True, slots=True)
class Frame:
    """What the watchdog needs of one stack frame."""

    module: str
    function: str
    filename: str
    lineno: int

    @classmethod
    def of(cls, frame: FrameType) -> Frame:
        return cls(
            str(frame.f_globals.get("__name__", "?")),
            frame.f_code.co_name,
            frame.f_code.co_filename,
            frame.f_lineno,
        )

    @property
    def place(self) -> str:
        return f"{self.module}:{self.function} ({self.filename}:{self.lineno})"

    @property
    def is_airloop(self) -> bool:
        return self.module == "airloop" or self.module.startswith("airloop.")

    @property
    def is_library(self) -> bool:
        return self.filename.startswith(("<", *_LIBRARY_PATHS))

    @property
    def runs_callbacks(self) -> bool:
        """The loop's dispatcher of every callback and task step (``Handle._run``)."""
        return self.module == "asyncio.events" and self.function == "_run"

    @property
    def calls_task_code(self) -> bool:
        return self.module == "airloop.executors.runner" and self.function == "run"


def classify(stack: Sequence[Frame], task_name: str | None) -> tuple[Cause, str]:
    """Whose code blocks, and where, from the loop thread's stack (innermost frame
    first) and the name of the asyncio task running (airloop's own are "airloop-...")."""
    if not stack:
        return "library", "unknown"
    in_task_code = any(f.calls_task_code for f in stack) or not (
        task_name is None or task_name.startswith("airloop-")
    )
    for depth, frame in enumerate(stack):
        if frame.runs_callbacks:
            break  # what lies beyond is the loop's caller (asyncio.run in the CLI), not a culprit
        if frame.is_airloop:
            if frame.calls_task_code and depth > 0:
                return "task", stack[0].place  # task code living in installed packages
            return "airloop", frame.place
        if not frame.is_library:
            if in_task_code:
                return "task", frame.place
            # Code airloop itself called outside any task (a hook, a patched helper).
            caller = next((f for f in stack[depth:] if f.is_airloop), None)
            called_by = f", called by {caller.place}" if caller is not None else ""
            return "airloop", f"{frame.place}{called_by}"
    return "library", stack[0].place


def _frames(frame: FrameType | None) -> Iterator[Frame]:
    while frame is not None:
        yield Frame.of(frame)
        frame = frame.f_back


@dataclass(frozen=True, slots=True)
class Block:
    culprit: str
    location: str
    seconds: float
    #: "task": the user's code; "airloop": airloop's own; "library": neither on the stack.
    cause: Cause = "task"


class LoopWatchdog:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold: float, interval: float | None = None
    ) -> None:
        self._loop = loop
        self.threshold = threshold
        self.interval = interval if interval is not None else min(threshold / 2, 0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="airloop-watchdog", daemon=True)
        self._loop_thread = threading.get_ident()
        #: How many times the loop was blocked longer than the threshold, by culprit.
        self.blocks_by_culprit: Counter[str] = Counter()
        self.blocks: list[Block] = []
        self.last_lag = 0.0
        self.max_lag = 0.0
        #: Every ping's lag (one writer: this watchdog's thread), for /metrics.
        self.lags = Histogram(FAST_BUCKETS)

    @property
    def blocked_count(self) -> int:
        return len(self.blocks)

    def start(self) -> None:
        """Call from the loop's thread."""
        self._loop_thread = threading.get_ident()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.threshold + 1)

    def _culprit(self) -> tuple[str, str, Cause]:
        """(who, where, cause), sampled while the loop is blocked."""
        task = asyncio.current_task(self._loop)
        name = task.get_name() if task is not None else "code outside any task"
        stack = list(_frames(sys._current_frames().get(self._loop_thread)))
        cause, location = classify(stack, None if task is None else name)
        if cause == "airloop":
            return f"airloop (in {name})", location, cause
        return name, location, cause

    def _report(self, block: Block) -> None:
        if block.cause == "task":
            log.warning(
                "the event loop was blocked for %.2fs by %s (at %s): blocking code in an "
                "async task stops every other task; make it a sync task, or call it "
                "through airloop.runtime.run_sync",
                block.seconds,
                block.culprit,
                block.location,
            )
        elif block.cause == "airloop":
            log.warning(
                "airloop blocked the event loop for %.2fs in %s (asyncio task %s): "
                "airloop's own code, not a task's; please report it",
                block.seconds,
                block.location,
                block.culprit.removeprefix("airloop (in ").removesuffix(")"),
            )
        else:
            log.warning(
                "the event loop was blocked for %.2fs in library code at %s (in %s)",
                block.seconds,
                block.location,
                block.culprit,
            )

    def _watch(self) -> None:
        while not self._stop.is_set():
            answered = threading.Event()
            sent = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed
            if not answered.wait(self.threshold):
                culprit, location, cause = self._culprit()
                while not answered.wait(0.05):
                    if self._stop.is_set() or self._loop.is_closed():
                        return
                block = Block(culprit, location, time.monotonic() - sent, cause)
                self.blocks.append(block)
                self.blocks_by_culprit[culprit] += 1
                self._report(block)
            lag = time.monotonic() - sent
            self.last_lag = lag
            self.lags.observe(lag)
            self.max_lag = max(self.max_lag, lag)
            self._stop.wait(self.interval)
