"""Review fixes of the sync lookup (``run_lookup``): it never waits forever."""

from __future__ import annotations

import asyncio
import threading

from airloop.connections.lookup import lookup_loop, run_lookup
from airloop.exceptions import AirloopError


def test_a_sync_lookup_whose_engine_loop_stops_fails_instead_of_hanging() -> None:
    """A worker thread waits on the engine's loop; the engine stops before the lookup
    ends: the thread gets a clear error, it does not wait forever."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    entered = threading.Event()
    outcome: dict[str, BaseException | object] = {}

    async def lookup() -> object:
        entered.set()
        await asyncio.Event().wait()  # a lookup still running when the engine stops
        return "never"

    def worker() -> None:
        lookup_loop.set(loop)
        try:
            outcome["value"] = run_lookup(lookup, "Variable.get('k')")
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        assert entered.wait(120)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(120)
        thread.join(30)  # a fail-safe for the hang under test, not a speed assertion
        assert not thread.is_alive(), "run_lookup still waits on a stopped event loop"
        error = outcome.get("error")
        assert isinstance(error, AirloopError), outcome
        assert "Variable.get('k')" in str(error)
        assert "event loop stopped" in str(error)
    finally:
        if not loop.is_running():
            loop.close()


def test_a_lookup_raising_timeout_error_is_not_taken_for_a_wait() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    outcome: dict[str, BaseException] = {}

    async def lookup() -> object:
        raise TimeoutError("the backend timed out")

    def worker() -> None:
        lookup_loop.set(loop)
        try:
            run_lookup(lookup, "conn.x")
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        thread.join(120)
        assert isinstance(outcome.get("error"), TimeoutError)
        assert str(outcome["error"]) == "the backend timed out"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(120)
        loop.close()
