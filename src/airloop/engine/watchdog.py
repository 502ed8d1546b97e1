"""The blocked-loop watchdog: measures event-loop lag and names what blocked it.

A thread pings the loop (``call_soon_threadsafe``) every ``interval`` seconds. When a
ping is not answered within ``threshold`` the loop is blocked right now, so the
watchdog looks at what the loop thread is running -- the current asyncio task (whose
name is the task instance's label) and the innermost line of code -- and, once the
loop answers, logs how long it was blocked and by what. Catching it in the act is
what makes the culprit nameable; a lag measured afterwards could not say who.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Block:
    culprit: str
    location: str
    seconds: float


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

    def _culprit(self) -> tuple[str, str]:
        task = asyncio.current_task(self._loop)
        name = task.get_name() if task is not None else "code outside any task"
        frame = sys._current_frames().get(self._loop_thread)
        location = "unknown"
        if frame is not None:
            location = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        return name, location

    def _watch(self) -> None:
        while not self._stop.is_set():
            answered = threading.Event()
            sent = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed
            if not answered.wait(self.threshold):
                culprit, location = self._culprit()
                while not answered.wait(0.05):
                    if self._stop.is_set() or self._loop.is_closed():
                        return
                seconds = time.monotonic() - sent
                self.blocks.append(Block(culprit, location, seconds))
                self.blocks_by_culprit[culprit] += 1
                log.warning(
                    "the event loop was blocked for %.2fs by %s (at %s): blocking code in an "
                    "async task stops every other task; make it a sync task, or call it "
                    "through airloop.runtime.run_sync",
                    seconds,
                    culprit,
                    location,
                )
            lag = time.monotonic() - sent
            self.last_lag = lag
            self.max_lag = max(self.max_lag, lag)
            self._stop.wait(self.interval)
