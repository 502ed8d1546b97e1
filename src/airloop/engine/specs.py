"""From a DAG (authoring objects) to what the planner and the store need."""

from __future__ import annotations

from airloop.authoring.dag import DAG
from airloop.authoring.mapped import MappedOperator
from airloop.authoring.operator import AbstractOperator
from airloop.core.specs import TaskSpec
from airloop.store.records import NewTaskInstance


def build_specs(dag: DAG, default_executor: str = "") -> list[TaskSpec]:
    weights = dag.priority_weights()
    specs = []
    for task_id in dag.topological_order():
        node = dag.task_dict[task_id]
        s = node.settings
        specs.append(
            TaskSpec(
                task_id=task_id,
                upstream=tuple(sorted(node.upstream_task_ids)),
                trigger_rule=s.trigger_rule,
                retry=s.retry_policy,
                pool=s.pool,
                pool_slots=s.pool_slots,
                priority_weight=weights[task_id],
                map_sources=node.map_sources() if isinstance(node, MappedOperator) else (),
                executor=s.executor or default_executor,
                is_setup=node.is_setup,
                is_teardown=node.is_teardown,
                on_failure_fail_dagrun=node.on_failure_fail_dagrun,
                depends_on_past=s.depends_on_past,
                max_active_tis_per_dag=s.max_active_tis_per_dag,
                max_active_tis_per_dagrun=s.max_active_tis_per_dagrun,
                per_index_upstream=_per_index_upstream(node),
            )
        )
    return specs


def _per_index_upstream(node: AbstractOperator) -> tuple[str, ...]:
    """A mapped task group's inner edges: the upstream tasks made in the same group."""
    group = node.group if isinstance(node, MappedOperator) else None
    if group is None:
        return ()
    inner = group.task_ids()
    return tuple(sorted(u for u in node.upstream_task_ids if u in inner))


def initial_rows(dag: DAG, specs: list[TaskSpec]) -> list[NewTaskInstance]:
    """The task_instance rows a new run starts with (mapped tasks: one placeholder each)."""
    rows = []
    for spec in specs:
        node = dag.task_dict[spec.task_id]
        operator = (
            node.factory.operator_name if isinstance(node, MappedOperator) else type(node).__name__
        )
        rows.append(
            NewTaskInstance(
                task_id=spec.task_id,
                pool=spec.pool,
                pool_slots=spec.pool_slots,
                priority_weight=spec.priority_weight,
                max_tries=spec.retry.max_tries,
                operator=operator,
            )
        )
    return rows
