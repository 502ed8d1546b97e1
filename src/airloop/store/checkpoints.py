"""Group commit for checkpoints: many tasks saving at once share one transaction.

10,000 Batch tasks each save their job id right after SubmitJob; one transaction per
save would cost a commit each. Saves that arrive while a commit is being prepared join
it; every caller's ``save`` returns only once its row is committed (durable).
"""

from __future__ import annotations

import asyncio
from typing import Any

from airloop.exceptions import LeaseLostError
from airloop.store.records import CheckpointRow
from airloop.store.runs import Store


class CheckpointWriter:
    def __init__(self, store: Store, window: float = 0.005) -> None:
        self._store = store
        self._window = window
        self._pending: list[tuple[CheckpointRow, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def save(self, run_pk: int, task_id: str, map_index: int, value: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A saver cancelled while it waits (its run handed over) no longer awaits the
        # outcome: mark it retrieved, so a refused save is not reported as unhandled.
        future.add_done_callback(_retrieve)
        row = CheckpointRow(run_pk, task_id, map_index, value)
        self._pending.append((row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="airloop-checkpoints")
        # Shielded: a task cancelled while saving still gets its row written (the
        # external work it names exists either way).
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            # Let the saves of the next few milliseconds join: one commit for all.
            await asyncio.sleep(self._window)
            batch, self._pending = self._pending, []
            try:
                stale = await self._store.save_checkpoints([row for row, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting saver
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for row, future in batch:
                    if future.done():
                        continue
                    if row.run_pk in stale:
                        future.set_exception(
                            LeaseLostError(
                                f"checkpoint of {row.task_id} not saved: the DAG's lease "
                                "moved to another scheduler"
                            )
                        )
                    else:
                        future.set_result(None)

    async def aclose(self) -> None:
        """Finish what was asked (called by the engine when it stops)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
