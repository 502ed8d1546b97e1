"""The trigger rules added for Airflow 3 parity, end to end through a real engine."""

from __future__ import annotations

from airloop import DAG, DagRunState, SkipTask, TriggerRule, task
from airloop.authoring.decorators import TaskDecorator
from airloop.engine.engine import Engine

from .support import ti_states


async def test_airflow3_rules_run_and_skip(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("airflow3_rules") as dag:

        @task
        def good() -> int:
            return 1

        @task
        def bad() -> int:
            raise ValueError("nope")

        @task
        def skipper() -> None:
            raise SkipTask("nothing new")

        def recorder(name: str, rule: TriggerRule) -> TaskDecorator:
            @task(task_id=name, trigger_rule=rule)
            def record() -> None:
                ran.append(name)

            return record

        g, b, s = good(), bad(), skipper()
        s >> recorder("all_skipped_runs", TriggerRule.ALL_SKIPPED)()
        [g, s] >> recorder("all_skipped_skips", TriggerRule.ALL_SKIPPED)()
        [b, s] >> recorder("one_done_runs", TriggerRule.ONE_DONE)()
        s >> recorder("one_done_skips", TriggerRule.ONE_DONE)()
        [g, b] >> recorder("min_one_success_runs", TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)()
        [g, s] >> recorder("min_one_success_skips", TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)()
        [b, s] >> recorder("setup_success_runs", TriggerRule.ALL_DONE_SETUP_SUCCESS)()

    result = await engine.run(dag)

    assert sorted(ran) == [
        "all_skipped_runs",
        "min_one_success_runs",
        "one_done_runs",
        "setup_success_runs",
    ]
    states = await ti_states(engine, result.run_pk)
    assert {k: v for k, v in states.items() if k not in ("good", "bad", "skipper")} == {
        "all_skipped_runs": "success",
        "all_skipped_skips": "skipped",
        "one_done_runs": "success",
        "one_done_skips": "skipped",
        "min_one_success_runs": "success",
        "min_one_success_skips": "skipped",
        "setup_success_runs": "success",
    }
    # Every leaf succeeded or was skipped: the failure of 'bad' was handled.
    assert result.state is DagRunState.SUCCESS
