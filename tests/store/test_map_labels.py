"""task_instance.rendered_map_index (migration 0004_mapping) on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from airloop.core.states import TaskState
from airloop.store.records import Expansion, NewTaskInstance, TIUpdate, WriteBatch
from airloop.store.runs import Store


async def test_a_mapped_instance_label_round_trips(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        pk = await store.create_run(
            dag_id="d",
            run_id="r",
            run_type="manual",
            logical_date=datetime(2026, 12, 1, tzinfo=UTC),
            params={},
            task_instances=[NewTaskInstance("m", "default_pool", 1, 1, 1)],
        )
        label = "fichier é.csv"
        await store.write(
            WriteBatch(
                expansions=[Expansion(pk, "m", 2)],
                ti_updates=[
                    TIUpdate(pk, "m", 0, TaskState.SUCCESS, 1, rendered_map_index=label),
                    TIUpdate(pk, "m", 1, TaskState.FAILED, 1),
                ],
            )
        )
        tis = {t.map_index: t for t in await store.task_instances(pk)}
        assert tis[0].rendered_map_index == label
        assert tis[1].rendered_map_index is None
    finally:
        await store.close()
