"""Authoring branching, short circuits, setup/teardown and fail_fast: what a DAG file
may write, and the clear errors for what it may not."""

from __future__ import annotations

import pytest

from airloop import DAG, DagDefinitionError, TriggerRule, setup, task, teardown
from airloop.authoring.branch import BranchPythonOperator, ShortCircuitOperator
from airloop.engine.specs import build_specs


def test_setup_and_teardown_reach_the_task_specs() -> None:
    with DAG("st") as dag:

        @setup
        def create() -> None:
            return None

        @teardown(on_failure_fail_dagrun=True)
        def delete() -> None:
            return None

        @task
        def work() -> None:
            return None

        c = create()
        c >> work() >> delete().as_teardown(setups=c)

    specs = {s.task_id: s for s in build_specs(dag)}
    assert specs["create"].is_setup
    assert not specs["create"].is_teardown
    assert specs["delete"].is_teardown
    assert specs["delete"].on_failure_fail_dagrun
    assert specs["delete"].trigger_rule is TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert set(specs["delete"].upstream) == {"create", "work"}


def test_a_teardown_cannot_have_another_trigger_rule() -> None:
    with pytest.raises(DagDefinitionError, match="trigger_rule cannot be set"):

        @teardown(trigger_rule="all_done")
        def delete() -> None:
            return None

    with DAG("st"):

        @task(trigger_rule="one_failed")
        def alert() -> None:
            return None

        with pytest.raises(DagDefinitionError, match="cannot have trigger_rule='one_failed'"):
            alert().as_teardown()


def test_setups_given_to_as_teardown_become_setup_tasks() -> None:
    with DAG("st") as dag:

        @task
        def create() -> None:
            return None

        @task
        def delete() -> None:
            return None

        c = create()
        delete().as_teardown(setups=[c])
        with pytest.raises(
            DagDefinitionError, match="'delete' is a teardown: it cannot be a setup"
        ):
            create().as_teardown(setups=dag.task_dict["delete"])

    assert dag.task_dict["create"].is_setup
    assert dag.task_dict["delete"].upstream_task_ids == {"create"}


def test_a_task_is_not_both_setup_and_teardown() -> None:
    with DAG("st"):

        @setup
        def create() -> None:
            return None

        with pytest.raises(DagDefinitionError, match="is a setup: it cannot be a teardown"):
            create().as_teardown()


def test_branch_and_short_circuit_decorators_make_their_operators() -> None:
    with DAG("b") as dag:

        @task.branch
        def pick() -> str:
            return "x"

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def check() -> bool:
            return True

        pick()
        check()

    assert isinstance(dag.task_dict["pick"], BranchPythonOperator)
    op = dag.task_dict["check"]
    assert isinstance(op, ShortCircuitOperator)
    assert op.ignore_downstream_trigger_rules is False


def test_a_mapped_branch_is_not_supported_yet() -> None:
    with DAG("b"):

        @task.branch
        def pick(x: int) -> str:
            return "x"

        with pytest.raises(DagDefinitionError, match=r"mapping .* is not supported yet"):
            pick.expand(x=[1, 2])


def test_fail_fast_allows_only_all_success_as_airflow() -> None:
    with DAG("ff", fail_fast=True) as dag:

        @task(trigger_rule="all_done")
        def anyway() -> None:
            return None

        anyway()

    assert dag.fail_fast is True
    with pytest.raises(DagDefinitionError, match=r"fail_fast=True.*'anyway' has 'all_done'"):
        dag.validate()


def test_linking_from_a_group_ignores_its_teardowns() -> None:
    from airloop import TaskGroup

    with DAG("grp") as dag:

        @setup
        def create() -> None:
            return None

        @task
        def work() -> None:
            return None

        @teardown
        def delete() -> None:
            return None

        @task
        def after() -> None:
            return None

        with TaskGroup("cluster") as group:
            c = create()
            c >> work() >> delete().as_teardown(setups=c)
        group >> after()

    assert dag.task_dict["after"].upstream_task_ids == {"cluster.work"}


def test_setup_needs_a_function() -> None:
    from airloop import task_group

    @task_group
    def grp() -> None:
        return None

    with pytest.raises(DagDefinitionError, match="task groups cannot be setups or teardowns"):
        setup(grp)
