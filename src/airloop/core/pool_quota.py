"""How one scheduler's share of a pool is decided when several share it (ADR 0041).

Pure arithmetic over what the ``pool_quota`` rows say; the store runs it under the
pool row's lock, so the other schedulers' shares cannot change meanwhile. Only a
scheduler changes its own share: the others may be admitting by theirs right now.

For one pool of ``size`` slots, this scheduler using ``in_use`` slots and waiting for
``waiting`` more (``want = in_use + waiting``), the others holding shares that leave
``free = size - sum(their shares)``:

- **Nobody else waits**: take ``max(want, headroom)`` of what is free, where
  ``headroom = ceil(size / live schedulers)``. A scheduler alone gets everything it
  wants; and the fair part is taken up front, so in a big pool (the default pool has
  100,000 slots) a new task starts without waiting for a rebalance.
- **Others wait** (they report waiting slots): take ``min(want, max(fair, free -
  reserved))`` of what is free, where ``fair`` is this scheduler's part of the
  max-min fair split of the pool over every scheduler's ``want`` (nobody gets more
  than it wants, the rest is split evenly: at least ``floor(size / schedulers
  wanting)`` each, or all it wants) and ``reserved`` is what the waiting others may
  still claim up to their own fair parts. No headroom: idle slots go to whoever waits.

The result is a **grant** (what local admission may fill) and the **share** written
down, ``max(in_use, grant)``: a scheduler above what it may keep (others wait, it
holds more than its fair share) keeps the slots its running task instances hold but
admits nothing more until they are released, and records less at each call as they
finish -- so a waiting scheduler gets at least its fair part once the others shrink,
without any of them cancelling work. (Ties: the slots an uneven split leaves go to
the lowest scheduler ids, one each.) The shares of a pool never add up to more than
its size, except when a scheduler's own use already exceeds what is free (after
adopting another scheduler's running task instances, e.g. Batch jobs, or after the
pool was shrunk): its share is then its use, and it admits nothing in that pool until
the sum is back under the size. (Tries resuming under the same try number count as
in use while they wait, and are admitted before any new start: ``RunPlanner``.)

What a slot idle in one scheduler's share costs: it moves at that scheduler's next
call (a renewal, 2 s). So in a small pool the headroom has a price: a scheduler that
suddenly wants all of an idle pool gets the others' headroom after their next calls
and its own (two renewals at most); with a big pool nobody notices. A task needing
more slots than its fair part waits while the others keep their fair parts busy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import ceil
from typing import NamedTuple


class Quota(NamedTuple):
    """Another live scheduler's row for the pool, as it last wrote it."""

    slots: int
    in_use: int
    demand: int
    scheduler_id: int = 0


@dataclass(frozen=True, slots=True)
class Share:
    """This scheduler's part of one pool: ``grant`` is what its admission may fill,
    ``slots`` what is recorded (never less than its use)."""

    slots: int
    grant: int


def fair_split(size: int, wants: Mapping[int, int]) -> dict[int, int]:
    """Max-min fair split of ``size`` slots by scheduler id: nobody gets more than it
    wants, and what one does not want is split among the others; the slots the
    integer division leaves go to the lowest ids (one each)."""
    split: dict[int, int] = {}
    remaining = size
    pending = sorted(wants, key=lambda sid: (wants[sid], sid))
    while pending:
        level = remaining // len(pending)
        if wants[pending[0]] > level:
            break
        sid = pending.pop(0)
        split[sid] = wants[sid]
        remaining -= wants[sid]
    if pending:
        level, extra = divmod(remaining, len(pending))
        for rank, sid in enumerate(sorted(pending)):
            split[sid] = level + (1 if rank < extra else 0)
    return split


def decide_share(
    size: int,
    in_use: int,
    waiting: int,
    others: Iterable[Quota],
    live: int,
    *,
    scheduler_id: int,
) -> Share:
    """This scheduler's share of a pool of ``size`` slots (see the module's text).
    ``others``: the other live schedulers' rows for the pool; ``live``: how many
    schedulers are live, this one included; ``scheduler_id``: this one's id (ties)."""
    others = list(others)
    want = in_use + waiting
    free = size - sum(o.slots for o in others)
    if any(o.demand > 0 for o in others):
        wants = {o.scheduler_id: o.in_use + o.demand for o in others}
        wants[scheduler_id] = want
        fair = fair_split(size, wants)
        reserved = sum(max(0, fair[o.scheduler_id] - o.slots) for o in others)
        target = min(want, max(fair[scheduler_id], free - reserved))
    else:
        target = max(want, ceil(size / max(live, 1)))
    grant = max(0, min(target, free))
    return Share(slots=max(in_use, grant), grant=grant)


__all__ = ["Quota", "Share", "decide_share", "fair_split"]
