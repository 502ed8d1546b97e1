"""How one try of a task instance ended, and the ids that trace a report through the logs.

An executor classifies the end of a try once, where it knows why (the runner, a
supervisor that saw its worker die, the scheduler when inputs cannot be resolved),
and reports it as an :class:`Outcome` with a human reason. Decisions (retry or not,
keep a cancelled try for the next start) test these fields, never the text.
"""

from __future__ import annotations

import itertools
import os
from enum import StrEnum


class Outcome(StrEnum):
    """The end of one try, as the code that ran (or watched) it saw it."""

    #: It returned (its value, if any, is the XCom).
    SUCCESS = "success"
    #: It asked to be skipped (SkipTask, a sensor's soft fail).
    SKIPPED = "skipped"
    #: It raised, or could not be started (inputs, loading, pickling).
    FAILED = "failed"
    #: Its execution_timeout fired.
    TIMED_OUT = "timed_out"
    #: It was cancelled on purpose (a stop, a run's abort, ``Engine.cancel``).
    INTERRUPTED = "interrupted"
    #: Whatever ran it went away (a worker process died, a Dask worker was lost, the
    #: scheduler restarted while it ran and it cannot re-attach).
    LOST = "lost"

    @property
    def ok(self) -> bool:
        """Success or skip: the try ended as the task meant it to."""
        return self in (Outcome.SUCCESS, Outcome.SKIPPED)


#: The start of the message of a cancellation that hands a try over to another
#: scheduler (its DAG's lease moved, ADR 0041): external work the try started (a Batch
#: job) must be left running, since the new owner re-attaches to it.
HANDOVER = "handover: "


def is_handover(exc: BaseException) -> bool:
    """Is this cancellation a handover (leave external work running)?"""
    return bool(exc.args) and str(exc.args[0]).startswith(HANDOVER)


_counter = itertools.count(1)


def new_stimulus_id(kind: str) -> str:
    """A short id for one report or decision (``finished-1a2b.17``), unique per process
    and cheap, shown in log lines and in an impossible-transition error so a state
    change can be traced to the report that caused it (like dask's ``stimulus_id``)."""
    return f"{kind}-{os.getpid():x}.{next(_counter)}"
