"""One "scheduler" process for tests/store/test_pool_quotas.py: rebalances pool "p"
``n`` times with task instances starting (up to its grant) and finishing at random.
Arguments: database URL, registry id, n, seed. Prints "<n> calls"."""

from __future__ import annotations

import asyncio
import random
import sys

from airloop.core.pools import PoolUse
from airloop.store.pool_quotas import share_pools
from airloop.store.runs import Store


async def main(url: str, sid: int, n: int, seed: int) -> None:
    rng = random.Random(seed)
    store = await Store.open(url)
    in_use = want = 0
    try:
        for _ in range(n):
            want = max(in_use, want + rng.randrange(-1, 3))
            if in_use and rng.random() < 0.5:
                done = rng.randrange(1, in_use + 1)
                in_use -= done
                want -= done
            use = {"p": PoolUse(in_use, want - in_use)}
            result = await share_pools(store, sid, lambda use=use: use)
            in_use = max(in_use, min(want, result.grants["p"]))
    finally:
        await store.close()
    print(f"{n} calls")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
