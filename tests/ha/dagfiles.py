"""The DAG files the several-scheduler suite runs, written into a test's DAG folder.

Every task first claims its try: it creates ``markers/<dag>/<run>/<task>.<map>.<try>``
with O_EXCL, writing host, pid, time and kind. A second start of the same try finds the
file, appends a line to ``collisions.txt`` and raises FileExistsError, so it fails
loudly both in its log and in a file the test reads. A Batch task's try may re-attach
to its job after an adoption (the same try resumed, not started again), so it writes no
marker: the small task right before it does, and the emulator is asked whether any
job name was submitted twice.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

#: Shared by every generated file: how a task claims its try, and the pool check.
COMMON = '''
import asyncio
import fcntl
import os
import pathlib
import socket
import time

from airloop import DAG, task

ROOT = pathlib.Path({root!r})
MARKERS = ROOT / "markers"


def claim(ti, kind):
    """Create this try's marker with O_EXCL: a try started twice fails here."""
    path = MARKERS / ti.dag_id / ti.run_id / f"{{ti.task_id}}.{{ti.map_index}}.{{ti.try_number}}"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{{socket.gethostname()}} {{os.getpid()}} {{time.time():.3f}} {{kind}}\\n"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with open(ROOT / "collisions.txt", "a") as out:
            out.write(f"{{path}} {{line}}")
        raise
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def pool_enter(limit):
    """Register in the shared pool file under a lock; more than `limit` in: fail."""
    with open(ROOT / "pool.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = ROOT / "pool.txt"
        inside = state.read_text().split() if state.exists() else []
        inside.append(str(os.getpid()) + ":" + str(time.time()))
        state.write_text(" ".join(inside))
        with open(ROOT / "pool_log.txt", "a") as log:
            log.write(f"{{os.getpid()}} {{len(inside)}}\\n")
        if len(inside) > limit:
            with open(ROOT / "pool_overflow.txt", "a") as out:
                out.write(f"{{len(inside)}} in the pool: {{inside}}\\n")
        return inside[-1]


def pool_leave(me):
    with open(ROOT / "pool.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = ROOT / "pool.txt"
        inside = state.read_text().split()
        inside.remove(me)
        state.write_text(" ".join(inside))
'''

#: One DAG of mixed work; stages run one after another, the tasks of a stage at once.
MIXED = """
from airloop.providers.aws.batch import BatchSubmitJobOperator


@task(retries=3, retry_delay=1)
async def nap(seconds: float, ti=None) -> None:
    await asyncio.to_thread(claim, ti, "async")
    await asyncio.sleep(seconds)


@task(retries=3, retry_delay=1)
def work(seconds: float, ti=None) -> None:
    claim(ti, "sync")
    time.sleep(seconds)


@task(retries=3, retry_delay=1)
def before_batch(ti=None) -> None:
    claim(ti, "batch-marker")


with DAG({dag_id!r}, schedule=None, max_active_tasks=200) as dag:
    previous = []
    for stage, plan in enumerate({stages!r}):
        current = []
        for index, (kind, seconds) in enumerate(plan):
            name = f"s{{stage}}_{{index}}_{{kind}}"
            if kind == "async":
                node = nap.override(task_id=name)(seconds)
                first = last = node
            elif kind == "sync":
                node = work.override(task_id=name)(seconds)
                first = last = node
            else:
                first = before_batch.override(task_id=name + "_marker")()
                last = BatchSubmitJobOperator(
                    task_id=name,
                    job_queue="q",
                    job_definition="jd",
                    container_overrides={{
                        "environment": [
                            {{"name": "AIRLOOP_EMULATOR_SECONDS", "value": str(seconds)}}
                        ]
                    }},
                    retries=3,
                    retry_delay=1,
                )
                first >> last
            for up in previous:
                up >> first
            current.append(last)
        previous = current
"""

#: One DAG whose tasks all take a slot of pool "five" for a while.
POOLED = """
@task(pool="five", retries=2, retry_delay=1)
def pooled(seconds: float, ti=None) -> None:
    claim(ti, "pool")
    me = pool_enter(5)
    try:
        time.sleep(seconds)
    finally:
        pool_leave(me)


with DAG({dag_id!r}, schedule=None) as dag:
    for i in range({tasks}):
        pooled.override(task_id=f"p{{i}}")({seconds})
"""

#: The smallest DAG: how fast a trigger is picked up.
QUICK = """
@task
async def hello() -> None:
    return None


with DAG({dag_id!r}, schedule=None) as dag:
    hello()
"""


def mixed_stages(seed: int, tasks: int = 100) -> list[list[tuple[str, float]]]:
    """``tasks`` task instances in stages of ten: async naps (0.2-1.5 s), sync work
    (0.2-1 s) and, every other stage, one Batch job of 1-2 s with its marker task."""
    rng = random.Random(seed)
    stages: list[list[tuple[str, float]]] = []
    left = tasks
    while left > 0:
        batch = len(stages) % 2 == 0 and left >= 10
        plan: list[tuple[str, float]] = []
        size = min(10, left)
        for i in range(size - (2 if batch else 0)):
            if i % 3 == 2:
                plan.append(("sync", round(rng.uniform(0.2, 1.0), 2)))
            else:
                plan.append(("async", round(rng.uniform(0.2, 1.5), 2)))
        if batch:
            plan.append(("batch", float(rng.choice((1, 2)))))
        stages.append(plan)
        left -= size
    return stages


def task_count(stages: list[list[tuple[str, float]]]) -> int:
    return sum(2 if kind == "batch" else 1 for plan in stages for kind, _ in plan)


def write_mixed(folder: Path, root: Path, dag_id: str, seed: int) -> int:
    """Write one mixed DAG file; returns its number of task instances."""
    stages = mixed_stages(seed)
    source = COMMON.format(root=str(root)) + MIXED.format(dag_id=dag_id, stages=stages)
    (folder / f"{dag_id}.py").write_text(textwrap.dedent(source))
    return task_count(stages)


def write_pooled(folder: Path, root: Path, dag_id: str, tasks: int, seconds: float) -> None:
    source = COMMON.format(root=str(root)) + POOLED.format(
        dag_id=dag_id, tasks=tasks, seconds=seconds
    )
    (folder / f"{dag_id}.py").write_text(source)


def write_quick(folder: Path, dag_id: str) -> None:
    (folder / f"{dag_id}.py").write_text(
        "import asyncio\nfrom airloop import DAG, task\n" + QUICK.format(dag_id=dag_id)
    )
