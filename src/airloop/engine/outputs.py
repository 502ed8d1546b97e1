"""A run's upstream outputs: the XCom texts it holds, decoded once, handed out as copies."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from airloop.authoring.dag import DAG
from airloop.authoring.xcom import NO_XCOMS, XCOM_RETURN_KEY, TaskXComs
from airloop.authoring.xcom_arg import as_sequence
from airloop.core.planner import RunPlanner
from airloop.core.specs import TIKey
from airloop.core.states import TaskState


class RunOutputs:
    """The XCom cache of one run and its ``OutputLookup`` (what ``bind`` resolves against).

    Values are JSON text as the worker encoded them; each is decoded once a task is done
    (every instance terminal), then shared -- never handed out directly: each caller
    gets its own deep copy. Which instances of a mapped task succeeded is read from the
    planner, the one holder of task-instance state.
    """

    def __init__(self, dag: DAG, planner: RunPlanner) -> None:
        self._dag = dag
        self._planner = planner
        #: Return values (JSON text) by task instance.
        self._texts: dict[TIKey, str] = {}
        #: Other keys' XComs (``xcom_push``, multiple_outputs) by task instance.
        self._keyed: dict[TIKey, dict[str, str]] = {}
        self._decoded: dict[str, Any] = {}
        self._sequences: dict[str, list[Any] | tuple[Any, ...]] = {}
        self._xcoms: dict[str, TaskXComs] = {}

    def record(self, key: TIKey, name: str, text: str) -> None:
        """A task instance's XCom ``name`` (JSON text), as reported or as stored."""
        if name == XCOM_RETURN_KEY:
            self._texts[key] = text
        else:
            self._keyed.setdefault(key, {})[name] = text

    def restore(self, stored: Iterable[tuple[TIKey, str, str]]) -> dict[str, int | None]:
        """Take the stored XComs of a resumed run; return the len() of each unmapped
        task's list/tuple/dict output (what the planner needs to expand downstream)."""
        lengths: dict[str, int | None] = {}
        for key, name, text in stored:
            self.record(key, name, text)
            if name == XCOM_RETURN_KEY and key.map_index < 0:
                value = json.loads(text)
                lengths[key.task_id] = (
                    len(value) if isinstance(value, (list, tuple, dict)) else None
                )
        return lengths

    def _output(self, task_id: str) -> Any:
        if task_id in self._decoded:
            return self._decoded[task_id]
        planner = self._planner
        if self._dag.task_dict[task_id].is_mapped:
            keys = sorted(
                (k for k in planner.keys(task_id) if planner.state_of(k) is TaskState.SUCCESS),
                key=lambda k: k.map_index,
            )
            value: Any = [_decode(self._texts.get(k)) for k in keys]
        else:
            value = _decode(self._texts.get(TIKey(task_id)))
        # Cache only a final answer: a task started early by its trigger rule
        # (one_success, always...) may look before this upstream has finished.
        if planner.task_done(task_id):
            self._decoded[task_id] = value
        return value

    def _instance(self, key: TIKey) -> dict[str, str]:
        keyed = self._keyed.get(key)
        text = self._texts.get(key)
        if text is None:
            return keyed or {}
        return {XCOM_RETURN_KEY: text, **(keyed or {})}

    # -- OutputLookup -----------------------------------------------------------------

    def xcoms(self, task_id: str) -> TaskXComs:
        found = self._xcoms.get(task_id)
        if found is not None:
            return found
        planner = self._planner
        if self._dag.task_dict[task_id].is_mapped:
            keys = sorted(
                (k for k in planner.keys(task_id) if planner.state_of(k) is TaskState.SUCCESS),
                key=lambda k: k.map_index,
            )
            found = TaskXComs(True, {k.map_index: self._instance(k) for k in keys})
        else:
            instance = self._instance(TIKey(task_id))
            found = TaskXComs(False, {-1: instance}) if instance else NO_XCOMS
        # Shared with every puller once final (its texts never change after that).
        if planner.task_done(task_id):
            self._xcoms[task_id] = found
        return found

    def instance_xcoms(self, task_id: str, map_index: int) -> TaskXComs:
        # One instance's texts (shared, never changed once stored): a task of a mapped
        # task group reads its group's tasks at its own map index, in O(1).
        keys = self._instance(TIKey(task_id, map_index))
        return TaskXComs(False, {-1: keys, map_index: keys})

    def __call__(self, task_id: str) -> Any:
        return copy.deepcopy(self._output(task_id))

    def length(self, task_id: str) -> int:
        return len(as_sequence(task_id, self._output(task_id)))

    def item(self, task_id: str, index: int) -> Any:
        seq = self._sequences.get(task_id)
        if seq is None:
            seq = as_sequence(task_id, self._output(task_id))
            if task_id in self._decoded:
                self._sequences[task_id] = seq
        return copy.deepcopy(seq[index])


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)
