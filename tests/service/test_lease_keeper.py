"""The lease keeper lets go before its leases can expire (ADR 0041): with the database
cut off (a TCP proxy that stops forwarding), it stops starting work after a third of
the lease and drops every DAG after two thirds -- both before the database's clock
says the lease expired -- and it takes DAGs again once the database answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from airloop.service.lease_keeper import LeaseKeeper
from airloop.settings import Settings
from airloop.store.db_clock import db_now
from airloop.store.runs import Store
from airloop.store.schema import dag as dag_table
from airloop.store.service import ServiceStore


class Proxy:
    """A loopback TCP proxy that can stop forwarding (a network partition)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.open = asyncio.Event()
        self.open.set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            self.open.set()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_cut_off_scheduler_lets_go_before_its_leases_expire(
    server_database_url: str,
) -> None:
    url = make_url(server_database_url)
    store = await Store.open(server_database_url)
    await ServiceStore(store).sync_dags({"d1": ("/d1.py", None), "d2": ("/d2.py", None)}, [])
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    loop = asyncio.get_running_loop()
    events: list[tuple[str, float]] = []
    ttl = 3.0
    try:
        async with proxy.serve() as port:
            settings = Settings(
                database_url=url.set(host="127.0.0.1", port=port).render_as_string(
                    hide_password=False
                ),
                scheduler_lease_ttl=ttl,
                scheduler_lease_renew_interval=0.5,
            )
            keeper = LeaseKeeper(
                settings,
                on_lost=lambda dags, why: events.append((f"lost {sorted(dags)}", loop.time())),
                hold=lambda on: events.append((f"hold {on}", loop.time())),
                stats=lambda: {},
            )
            await keeper.start(hostname="h", pid=1)
            stop = asyncio.Event()
            serving = asyncio.create_task(keeper.serve(stop))
            try:
                assert await keeper.balance(["d1", "d2"], lambda d: False) == {"d1", "d2"}
                await asyncio.sleep(1.0)  # renewals go through
                assert events == []
                proxy.open.clear()  # cut off
                async with asyncio.timeout(ttl * 3):
                    while not any(e.startswith("lost") for e, _ in events):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                # The database's clock: the leases have not expired yet (a third of the
                # lease is the margin for the time the last renewal was in flight).
                async with store.engine.connect() as conn:
                    live = (
                        await conn.execute(
                            select(func.count()).where(
                                dag_table.c.lease_expires_at > db_now(store.engine.dialect)
                            )
                        )
                    ).scalar()
                assert live == 2
                kinds = [e for e, _ in events]
                assert kinds == ["hold True", "lost ['d1', 'd2']"]
                assert keeper.held == set()
                proxy.open.set()  # back: it starts again and may claim again
                async with asyncio.timeout(ttl * 3):
                    while "hold False" not in [e for e, _ in events]:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.wait_for(serving, 30)
                await keeper.stop()
    finally:
        await store.close()
