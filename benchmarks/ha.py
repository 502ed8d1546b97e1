"""Several schedulers: one against three on D DAG files of T tasks, all triggered at once.

    python benchmarks/ha.py --backend postgresql [--dags 300 --tasks 50] [--json]

Each measure gets a fresh database on the server (PostgreSQL 127.0.0.1:5432 user
postgres, or MariaDB 127.0.0.1:3306 root; AIRLOOP_TEST_PG / AIRLOOP_TEST_MYSQL as in
the tests), a DAG folder of D files of T no-op async tasks, and N real ``airloop
scheduler`` processes with the default lease settings (ttl 10 s, renew 2 s), started
once ``airloop db migrate`` has created the schema. Once every scheduler is alive and
every DAG recorded and leased, one run of every DAG is queued at once (as ``airloop dags trigger`` does) and timed until all
have succeeded.

Round trips are counted on the server: on MariaDB the delta of ``SHOW GLOBAL STATUS
LIKE 'Questions'`` (statements from every client of the server: run it on a quiet
server); on PostgreSQL ``pg_stat_statements`` calls of this database when the
extension is loaded, else ``pg_stat_database`` commits + rollbacks of this database
(transactions, not statements). ``round_trips_source`` says which.

Takeover: with three schedulers, the same folder with the tasks of each DAG chained
(T steps of 0.2 s, so every run always has a next task to start; retries, since a try
that was running when its scheduler died is failed as lost and retried); at about 30 % of
the task instances done the scheduler holding the most DAGs is SIGKILLed, and the
benchmark reports the time from the kill, and from the latest expiry of its leases,
to the first task instance of its DAGs started by another scheduler (database clock).

Prints {"backend", "dags", "tasks_per_dag", "one": {...}, "three": {...}, "takeover":
{...}}; each measure: total_s, tasks_per_s, round_trips, round_trips_per_ti.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from airloop.store.runs import Store
from airloop.store.service import ServiceStore

ADMIN = {
    "postgresql": os.environ.get(
        "AIRLOOP_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("AIRLOOP_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306/test"),
}

NOOP = """
from airloop import DAG, task

with DAG("ha_bench_{i}", schedule=None) as dag:
    @task
    async def noop() -> None:
        return None

    for _ in range({tasks}):
        noop()
"""

CHAINED = """
import asyncio
from airloop import DAG, chain, task

with DAG("ha_bench_{i}", schedule=None) as dag:
    # A try lost with its scheduler is retried as a new try by the adopter.
    @task(retries=2, retry_delay=0)
    async def step() -> None:
        await asyncio.sleep(0.2)

    chain(*[step() for _ in range({tasks})])
"""

#: Bounds: nothing here should take anywhere near this long.
START_TIMEOUT = 300.0
RUN_TIMEOUT = 1800.0


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    admin = ADMIN[backend]
    name = f"airloop_bench_{uuid.uuid4().hex[:10]}"
    server = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield f"{admin.rsplit('/', 1)[0]}/{name}"
        finally:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            async with server.connect() as conn:
                await conn.execute(text(f"DROP DATABASE {name}{force}"))
    finally:
        await server.dispose()


class RoundTrips:
    """A counter of what the clients asked the server, read before and after."""

    def __init__(self, backend: str, engine: AsyncEngine, database: str) -> None:
        self.backend = backend
        self.engine = engine
        self.database = database
        self.source = "mariadb: SHOW GLOBAL STATUS Questions (whole server)"

    async def detect(self) -> None:
        if self.backend != "postgresql":
            return
        try:
            await self._scalar("SELECT count(*) FROM pg_stat_statements")
        except Exception:  # noqa: BLE001 - not loaded: fall back to transactions
            self.source = "postgresql: pg_stat_database xact_commit + xact_rollback (transactions)"
        else:
            self.source = "postgresql: pg_stat_statements calls (this database)"

    async def _scalar(self, sql: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(text(sql), {"db": self.database})).scalar() or 0)

    async def read(self) -> int:
        if self.backend == "mariadb":
            async with self.engine.connect() as conn:
                row = (await conn.execute(text("SHOW GLOBAL STATUS LIKE 'Questions'"))).one()
            return int(row[1])
        if "statements" in self.source:
            return await self._scalar(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :db"
            )
        # The statistics collector publishes with a delay: ask for a fresh snapshot.
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            value = await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :db"
                ),
                {"db": self.database},
            )
            return int(value.scalar() or 0)


@dataclass
class Cluster:
    url: str
    folder: Path
    root: Path
    procs: list[subprocess.Popen[bytes]]

    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOOP_")}
        env.update(
            AIRLOOP_HOME=str(home),
            AIRLOOP_DATABASE_URL=self.url,
            AIRLOOP_DAGS_FOLDER=str(self.folder),
        )
        return env

    async def migrate(self) -> None:
        """The schema first (``airloop db migrate``), as a deployment does before it
        starts several schedulers."""
        home = self.root / "migrate"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airloop", "db", "migrate", env=self.env(home)
        )
        if await proc.wait() != 0:
            raise RuntimeError("airloop db migrate failed")

    def start(self, count: int) -> None:
        for n in range(count):
            home = self.root / f"scheduler-{n}"
            home.mkdir(parents=True)
            with (home / "output.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "airloop", "scheduler"],
                        env=self.env(home),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 30)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # and any orphaned parser
            await asyncio.to_thread(proc.wait)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {within:g}s: {what}")
        await asyncio.sleep(0.2)  # the benchmark watches the database from outside


async def ready(engine: AsyncEngine, procs: list[subprocess.Popen[bytes]], dags: int) -> None:
    """Every scheduler registered and running, every DAG recorded and leased."""
    pids = {p.pid for p in procs}

    async def check() -> bool:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"scheduler {proc.pid} exited with {proc.returncode}")
        try:
            beats = await rows(engine, "SELECT pid, state FROM scheduler_heartbeat")
            # One scheduler leases its DAGs too (scheduler_ha = "auto" on a server).
            owned = await rows(engine, "SELECT count(*) FROM dag WHERE owner_id IS NOT NULL")
        except Exception:  # noqa: BLE001 - the schema is being created
            return False
        running = {pid for pid, state in beats if state == "running"}
        return pids <= running and int(owned[0][0]) >= dags

    await until(check, START_TIMEOUT, "schedulers alive and DAGs leased")


async def queue_all(url: str, dags: int) -> None:
    store = await Store.open(url, auto_migrate=False)
    try:
        now = datetime.now(UTC)
        for i in range(dags):
            await ServiceStore(store).queue_run(f"ha_bench_{i}", "bench", {}, now)
    finally:
        await store.close()


async def measure(backend: str, dags: int, tasks: int, schedulers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="airloop-ha-bench-") as tmp:
        root = Path(tmp)
        folder = root / "dags"
        folder.mkdir()
        for i in range(dags):
            (folder / f"ha_bench_{i}.py").write_text(NOOP.format(i=i, tasks=tasks))
        async with fresh_database(backend) as url:
            engine = create_async_engine(url, pool_size=2)
            cluster = Cluster(url, folder, root, [])
            try:
                await cluster.migrate()
                cluster.start(schedulers)
                await ready(engine, cluster.procs, dags)
                counter = RoundTrips(backend, engine, url.rsplit("/", 1)[1])
                await counter.detect()
                before = await counter.read()
                t0 = time.perf_counter()
                await queue_all(url, dags)

                async def done() -> bool:
                    got = await rows(engine, "SELECT count(*) FROM dag_run WHERE state = 'success'")
                    return int(got[0][0]) >= dags

                await until(done, RUN_TIMEOUT, f"{dags} runs succeeded")
                total = time.perf_counter() - t0
                trips = await counter.read() - before
                spread = await rows(
                    engine, "SELECT count(DISTINCT owner_id) FROM dag WHERE owner_id IS NOT NULL"
                )
            finally:
                await cluster.stop()
                await engine.dispose()
    tis = dags * tasks
    return {
        "schedulers": schedulers,
        "total_s": round(total, 2),
        "tasks_per_s": round(tis / total, 1),
        "round_trips": trips,
        "round_trips_per_ti": round(trips / tis, 3),
        "round_trips_source": counter.source,
        "dag_owners_at_end": int(spread[0][0]),
    }


async def takeover(backend: str, dags: int, tasks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="airloop-ha-bench-") as tmp:
        root = Path(tmp)
        folder = root / "dags"
        folder.mkdir()
        for i in range(dags):
            (folder / f"ha_bench_{i}.py").write_text(CHAINED.format(i=i, tasks=tasks))
        async with fresh_database(backend) as url:
            engine = create_async_engine(url, pool_size=2)
            cluster = Cluster(url, folder, root, [])
            try:
                await cluster.migrate()
                cluster.start(3)
                await ready(engine, cluster.procs, dags)
                await queue_all(url, dags)

                async def far_enough() -> bool:
                    got = await rows(
                        engine, "SELECT count(*) FROM task_instance WHERE state = 'success'"
                    )
                    return int(got[0][0]) >= 0.3 * dags * tasks

                await until(far_enough, RUN_TIMEOUT, "30% of the task instances done")
                # The scheduler with the most DAGs that still have work left.
                owners = await rows(
                    engine,
                    "SELECT h.pid, h.id, count(DISTINCT d.dag_id) FROM dag d "
                    "JOIN scheduler_heartbeat h ON h.id = d.owner_id "
                    "JOIN dag_run r ON r.dag_id = d.dag_id AND r.state = 'running' "
                    "GROUP BY h.pid, h.id ORDER BY count(DISTINCT d.dag_id) DESC",
                )
                if not owners:
                    raise RuntimeError("every run finished before the kill: use more tasks")
                victim_pid, victim_id, victim_dags = owners[0]
                victim_dag_ids = [
                    r[0]
                    for r in await rows(
                        engine, "SELECT dag_id FROM dag WHERE owner_id = :me", me=victim_id
                    )
                ]
                os.kill(victim_pid, signal.SIGKILL)
                killed = time.perf_counter()
                # Naive UTC, as airloop stores times (UtcDateTime) on both servers.
                clock = (
                    "now() AT TIME ZONE 'UTC'" if backend == "postgresql" else "UTC_TIMESTAMP(6)"
                )
                (killed_db,) = (await rows(engine, f"SELECT {clock}"))[0]
                (expiry,) = (
                    await rows(
                        engine,
                        "SELECT max(lease_expires_at) FROM dag WHERE owner_id = :me",
                        me=victim_id,
                    )
                )[0]
                # Anything of its DAGs started after the kill was started by another.
                first_start = text(
                    "SELECT min(ti.start_date) FROM task_instance ti "
                    "JOIN dag_run r ON r.id = ti.dag_run_id "
                    "WHERE r.dag_id IN :victims AND ti.start_date > :killed"
                ).bindparams(bindparam("victims", expanding=True))
                first: list[Any] = []

                async def adopted() -> bool:
                    async with engine.connect() as conn:
                        got = await conn.execute(
                            first_start, {"victims": victim_dag_ids, "killed": killed_db}
                        )
                        value = got.scalar()
                    if value is not None:
                        first.append(value)
                    return value is not None

                try:
                    await until(adopted, 120, "the first task of an adopted DAG started")
                except TimeoutError:
                    await _diagnose(engine, cluster, victim_dag_ids, killed_db)
                    raise
                seen = time.perf_counter() - killed
            finally:
                await cluster.stop()
                await engine.dispose()
    started = _aware(first[0])
    return {
        "killed_pid": victim_pid,
        "dags_of_killed": int(victim_dags),
        "kill_to_first_adopted_start_s": round((started - _aware(killed_db)).total_seconds(), 2),
        "lease_expiry_to_first_adopted_start_s": round(
            (started - _aware(expiry)).total_seconds(), 2
        ),
        "seen_by_benchmark_after_s": round(seen, 2),
    }


async def _diagnose(
    engine: AsyncEngine, cluster: Cluster, dag_ids: list[str], killed: datetime
) -> None:
    """What the database and the schedulers say when no adopted task started."""
    print(f"killed at {killed} (database clock)", file=sys.stderr)
    for row in await rows(
        engine, "SELECT dag_id, owner_id, lease_token, lease_expires_at FROM dag"
    ):
        print("lease", *row, "(victim's)" if row[0] in dag_ids else "", file=sys.stderr)
    for row in await rows(
        engine,
        "SELECT r.dag_id, r.state, ti.state, count(*), max(ti.start_date) FROM task_instance ti "
        "JOIN dag_run r ON r.id = ti.dag_run_id GROUP BY r.dag_id, r.state, ti.state "
        "ORDER BY r.dag_id",
    ):
        print("tis", *row, file=sys.stderr)
    for row in await rows(
        engine, "SELECT id, pid, state, heartbeat_at, expires_at FROM scheduler_heartbeat"
    ):
        print("registry", *row, file=sys.stderr)
    for n, _ in enumerate(cluster.procs):
        log = cluster.root / f"scheduler-{n}" / "output.log"
        print(f"--- scheduler-{n}:", log.read_text()[-3000:], sep="\n", file=sys.stderr)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def run(backend: str, dags: int, tasks: int, which: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "dags": dags, "tasks_per_dag": tasks}
    if "one" in which:
        out["one"] = await measure(backend, dags, tasks, 1)
    if "three" in which:
        out["three"] = await measure(backend, dags, tasks, 3)
    if "takeover" in which:
        out["takeover"] = await takeover(backend, dags, tasks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(ADMIN), default="postgresql")
    parser.add_argument("--dags", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument(
        "--only", default="one,three,takeover", help="Comma-separated: one, three, takeover."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    which = set(args.only.split(","))
    unknown = which - {"one", "three", "takeover"}
    if unknown:
        parser.error(f"--only: unknown measure(s) {', '.join(sorted(unknown))}")
    out = asyncio.run(run(args.backend, args.dags, args.tasks, which))
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
