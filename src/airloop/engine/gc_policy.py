"""The engine's garbage-collector policy (ADR 0044): fewer, cheaper cyclic collections
while runs are active, the process left as it was found when the engines stop.

Why: an engine holds tens of thousands of long-lived objects (operators, specs, planner
state, rows); CPython's cyclic GC walks all of them again at every older-generation
collection, about a quarter of a 10,000-task run's CPU. Two levers, both process-wide
(there is one collector per process, however many engines it runs):

- **freeze** what exists once a run's DAG is parsed and its specs and planner are built
  (a collection, then ``gc.freeze()``; before the run's clock starts): the collector
  no longer walks it. The first freeze collects only the young generations (a full
  pass would walk an embedding program's whole heap while the loop waits). Done again
  at every run start, so a re-parsed DAG or a new run's state is frozen too; each time,
  the collection before the freeze walks only what was made since the last one. A frozen
  object freed by its reference count is freed as ever; only garbage *cycles* among
  frozen objects wait, so once the frozen set has grown by a quarter since the last
  full pass (CPython's own rule for its full collections), everything is unfrozen,
  collected and frozen again.
- **raise the thresholds** while any run is active (``RUN_THRESHOLDS``): collections of
  the young generations are rarer, each walks more objects, the total walked is smaller.
  The thresholds found are put back when the last active run ends.

When the last engine stops, what the policy froze is unfrozen and one full collection
frees the cycles that waited. An embedding program that froze objects itself (its
freeze count was not zero when an engine first engaged) keeps control of freezing: the
policy then never freezes nor unfreezes (``gc.unfreeze`` would unfreeze the program's
objects too), it only raises the thresholds during runs. Thresholds the program set
while a run was active are left as it set them.
"""

from __future__ import annotations

import gc
import threading

#: Collector thresholds while runs are active (gen 0 allocations, gen 1, gen 2 passes):
#: chosen by measurement (docs/performance.md, "A garbage-collector policy").
RUN_THRESHOLDS = (50_000, 20, 10)

#: A full pass (unfreeze, collect, freeze) once the frozen set grew past this factor of
#: its size after the last full pass: frozen garbage cycles stay bounded by about a
#: fifth of what is frozen, and each object is walked a bounded number of times.
REFREEZE_GROWTH = 1.25


class _ProcessGc:
    """What the engines of this process share about the collector (one lock, any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engaged = 0  # engines with the policy on, serving
        self.active = 0  # their active runs, all engines
        self.saved: tuple[int, int, int] | None = None  # thresholds found, while raised
        self.freezing = False  # this policy owns the permanent generation
        self.frozen_after_full = 0  # freeze count after the last full pass

    def engage(self) -> None:
        with self.lock:
            if self.engaged == 0:
                # Nobody else's frozen objects: freezing (and unfreezing) is ours to do.
                self.freezing = gc.get_freeze_count() == 0
                self.frozen_after_full = 0
            self.engaged += 1

    def release(self, runs: int) -> None:
        """An engine stops with ``runs`` of its runs still counted as active."""
        with self.lock:
            self._end_runs(runs)
            self.engaged -= 1
            if self.engaged == 0 and self.freezing:
                self.freezing = False
                gc.unfreeze()
                gc.collect()

    def run_started(self) -> None:
        with self.lock:
            self.active += 1
            if self.active == 1:
                self.saved = gc.get_threshold()
                gc.set_threshold(*RUN_THRESHOLDS)

    def run_ended(self) -> None:
        with self.lock:
            self._end_runs(1)

    def _end_runs(self, runs: int) -> None:
        if runs <= 0:
            return
        self.active -= runs
        if self.active == 0 and self.saved is not None:
            if gc.get_threshold() == RUN_THRESHOLDS:  # else the program changed them
                gc.set_threshold(*self.saved)
            self.saved = None

    def settle(self) -> None:
        """Collect what is young, then freeze every survivor (a full pass when due)."""
        with self.lock:
            if self.freezing:
                self._settle()

    def _settle(self) -> None:
        frozen = gc.get_freeze_count()
        if self.frozen_after_full == 0:
            # The first freeze since the engines engaged: collect the young generations
            # only (what building the run made). A full pass here would walk the whole
            # heap of the program embedding the engine while the event loop waits
            # (0.7 s in a test process); its old garbage waits for the next full pass.
            gc.collect(1)
            gc.freeze()
            self.frozen_after_full = gc.get_freeze_count()
        elif frozen > self.frozen_after_full * REFREEZE_GROWTH:
            # As often as CPython's own rule would run a full collection: no more
            # blocking than the default collector's.
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.frozen_after_full = gc.get_freeze_count()
        else:
            gc.collect()
            gc.freeze()


_PROCESS = _ProcessGc()


class GcPolicy:
    """One engine's part in the process's policy: engaged while the engine serves, a
    count of its runs being built or active (so stopping releases exactly those)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._engaged = False
        self._runs = 0

    def engage(self) -> None:
        if self.enabled and not self._engaged:
            _PROCESS.engage()
            self._engaged = True

    def run_starting(self) -> None:
        """A run is about to be built (specs, planner, rows): thresholds raised from
        here, since building 10,000 task instances is allocation-heavy too."""
        if self._engaged:
            self._runs += 1
            _PROCESS.run_started()

    def run_built(self) -> None:
        """The run's DAG, specs and planner are built (its rows not yet written, its
        clock not started): collect, then freeze what exists now."""
        if self._engaged:
            _PROCESS.settle()

    def run_ended(self) -> None:
        """A run counted by ``run_starting`` is done (or failed to start)."""
        if self._engaged and self._runs > 0:
            self._runs -= 1
            _PROCESS.run_ended()

    def release(self) -> None:
        """The engine stops: thresholds restored with the last active run of the process,
        what the policy froze unfrozen and collected with the last engine."""
        if self._engaged:
            self._engaged = False
            runs, self._runs = self._runs, 0
            _PROCESS.release(runs)
