"""The planner alone: one run of N independent tasks driven as the engine drives it.

    python benchmarks/planner.py --tasks 10000 [--rounds 5] [--batch 1000]

No store, no executor: ``start`` and the cross-run ``Admission.admit``, then each task
instance's ``Started`` and ``Succeeded`` handed to ``handle`` in batches of ``--batch``
(the engine's ticks), until the run is over -- the four transitions of every task of
``benchmarks/throughput.py``. Prints JSON: the best round's seconds and microseconds
per task instance. With ``valgrind --tool=callgrind`` (``--rounds 1``) at two sizes,
with and without ``--build-only`` (the specs and events only), the differences give
the planner's instructions per task, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import json
import time

from airloop.core.admission import Admission
from airloop.core.planner import RunPlanner
from airloop.core.pools import DEFAULT_POOL
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.stimuli import Started, Succeeded


def build(n: int) -> tuple[list[TaskSpec], list[Started], list[Succeeded]]:
    """The specs and the events the engine would hand the planner (not timed)."""
    specs = [TaskSpec(f"noop_{i}") for i in range(n)]
    keys = [TIKey(s.task_id) for s in specs]
    return specs, [Started(k) for k in keys], [Succeeded(k) for k in keys]


def one_run(n: int, batch: int, build_only: bool = False) -> float:
    specs, started, succeeded = build(n)
    if build_only:
        return 0.0
    admission = Admission({DEFAULT_POOL: 128 * 1024})
    t0 = time.perf_counter()
    planner = RunPlanner(specs, max_active_tasks=max(n, 1), admission=admission)
    planner.start(0.0, admit=False)
    admission.admit()
    assert len(planner.take_admitted().to_start) == n
    for i in range(0, n, batch):
        planner.handle(started[i : i + batch], 1.0, admit=False)
        planner.handle(succeeded[i : i + batch], 2.0, admit=False)
        admission.admit()
        planner.take_admitted()
    assert planner.finished, "the run did not finish"
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--build-only", action="store_true", help="build the inputs, exit")
    args = parser.parse_args()
    best = min(one_run(args.tasks, args.batch, args.build_only) for _ in range(args.rounds))
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "seconds": round(best, 4),
                "us_per_task": round(best / max(args.tasks, 1) * 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
