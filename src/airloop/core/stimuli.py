"""What the planner is told: events about task instances and lifecycle stimuli about a run."""

from __future__ import annotations

from dataclasses import dataclass, field

from airloop.core.outcomes import Outcome
from airloop.core.specs import TIKey

# -- events -------------------------------------------------------------------------
#
# Each event carries the id of the report (or decision) it came from: the changes it
# causes, directly or by cascading downstream, carry that id too (``Change.stimulus_id``),
# and so do the log lines about them and an impossible-transition error.


@dataclass(frozen=True, slots=True)
class Started:
    key: TIKey
    stimulus_id: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Succeeded:
    key: TIKey
    #: len() of the returned value when it is a list/tuple/dict, so mapped tasks downstream
    #: can be expanded without the planner seeing the value itself.
    output_length: int | None = None
    stimulus_id: str = field(default="", compare=False)
    #: Tasks the finished task decided to skip (a branch's unchosen paths, a short
    #: circuit's downstream): their instances not yet decided are skipped with it, in
    #: the same plan (so in the same write as the success).
    skip_downstream: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Failed:
    key: TIKey
    reason: str
    #: Typed by whoever classified the end of the try; the planner decides on
    #: ``retryable`` (and the retry policy), never on the reason's text.
    retryable: bool = True
    outcome: Outcome = Outcome.FAILED
    stimulus_id: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Skipped:
    key: TIKey
    reason: str = ""
    stimulus_id: str = field(default="", compare=False)


Event = Started | Succeeded | Failed | Skipped


# -- lifecycle stimuli: about the whole run ---------------------------------------------


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The scheduler is stopping: start nothing more, cancel what runs (``to_cancel``).

    Without ``keep`` the run fails once nothing runs (its scheduled and retry-waiting
    task instances fail with ``interrupted: reason``). With ``keep`` (the service
    stopping) the run is left as the store has it for the next start: tries that
    report ``Outcome.INTERRUPTED`` stay queued/running there (``Plan.kept`` once none
    is outstanding).
    """

    reason: str
    keep: bool = False
    stimulus_id: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class AbortRequested:
    """Fail the run (its dagrun_timeout passed...): cancel what runs, start nothing;
    once nothing runs, what is left fails with ``reason``."""

    reason: str
    stimulus_id: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class GraceExpired:
    """A stop's grace period is over: what still runs is failed (or, with ``keep``,
    left running for the next start) and the run ends now."""

    grace: float
    stimulus_id: str = field(default="", compare=False)


Lifecycle = StopRequested | AbortRequested | GraceExpired


# -- facts from outside the run -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PastGateMet:
    """The ``depends_on_past`` gate of a held task instance is met (the previous run's
    instance succeeded or was skipped...): it may be scheduled now."""

    key: TIKey
    stimulus_id: str = field(default="", compare=False)


Stimulus = Event | Lifecycle | PastGateMet
