"""XComs with keys: encoding, what a task instance may pull, and how a pull is answered.

A task instance never reads the database. The XComs it may pull -- those of the tasks
upstream of it, directly or transitively -- travel with it as JSON texts
(``XComSnapshot``), to a thread, a worker process or a Dask worker alike (ADR 0025).
What it pushes (``ti.xcom_push``) is encoded and size-checked at once and reported
with its outcome; the scheduler stores it when the try succeeds.
"""

from __future__ import annotations

import itertools
import json
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airloop.core.jsonsafe import non_string_key
from airloop.exceptions import XComError

if TYPE_CHECKING:
    from airloop.authoring.operator import AbstractOperator
    from airloop.authoring.xcom_arg import OutputLookup

#: The key of a task's return value among its XComs (Airflow's name).
XCOM_RETURN_KEY = "return_value"
#: Keys are stored in a bounded column (as task ids).
MAX_KEY_LENGTH = 250


class XComPullError(XComError):
    """``ti.xcom_pull`` (or a subscripted output) asked for something this task cannot
    read: a mistake in the DAG, so the try fails without retry."""


# -- encoding -------------------------------------------------------------------------


def encode(subject: str, value: Any, limit: int) -> str:
    """JSON text of ``value``; ``subject`` starts the error ("task 'a' returned")."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise XComError(
            f"{subject} a {type(value).__name__} that cannot be stored as XCom (JSON): {exc}"
        ) from None
    found = non_string_key(value)
    if found is not None:
        key, path = found
        raise XComError(
            f"{subject} a dict with the non-string key {key!r} ({type(key).__name__}) at "
            f"{path or 'the top level'}; XCom is JSON, whose keys are strings: use string keys"
        )
    size = len(text.encode())
    if size > limit:
        raise XComError(
            f"{subject} {size:,} bytes of XCom, over the limit of {limit:,} "
            "(setting xcom_max_bytes); store large data elsewhere and return a reference"
        )
    return text


def check_key(where: str, key: object) -> str:
    """A key a task may push (or return under multiple_outputs)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise XComError(
            f"{where}: XCom key {key!r} is invalid: use a non-empty string of at most "
            f"{MAX_KEY_LENGTH} characters"
        )
    if key == XCOM_RETURN_KEY:
        raise XComError(
            f"{where}: XCom key {XCOM_RETURN_KEY!r} is the return value's: return the value "
            "instead, or use another key"
        )
    return key


def multiple_outputs(task: str, value: Any, limit: int) -> list[tuple[str, str]]:
    """Each key of a ``multiple_outputs`` task's returned dict as its own XCom."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise XComError(
            f"task {task!r} has multiple_outputs=True but returned a {type(value).__name__}, "
            "not a dict"
        )
    where = f"task {task!r} (multiple_outputs)"
    return [
        (check_key(where, k), encode(f"task {task!r} returned under key {k!r}", v, limit))
        for k, v in value.items()
    ]


def infer_multiple_outputs(fn: Callable[..., Any]) -> bool:
    """Airflow's inference: a function annotated to return a mapping (``dict``,
    ``dict[str, int]``, a TypedDict) has multiple outputs."""
    if "return" not in getattr(fn, "__annotations__", {}):
        return False
    try:
        returned = typing.get_type_hints(fn).get("return", Any)
    except Exception:  # noqa: BLE001 - an unresolvable annotation infers nothing
        return False
    origin = typing.get_origin(returned) or returned
    return isinstance(origin, type) and issubclass(origin, Mapping)


class Pushed:
    """What one try pushed with ``ti.xcom_push``: key -> JSON text, in push order."""

    __slots__ = ("_limit", "_task", "_texts")

    def __init__(self, task: str, limit: int) -> None:
        self._task = task
        self._limit = limit
        self._texts: dict[str, str] = {}

    def push(self, key: object, value: Any) -> None:
        where = f"ti.xcom_push in task {self._task!r}"
        name = check_key(where, key)
        self._texts[name] = encode(f"task {self._task!r} pushed (key {name!r})", value, self._limit)

    def get(self, key: str) -> Any:
        text = self._texts.get(key)
        return None if text is None else json.loads(text)

    def items(self) -> list[tuple[str, str]]:
        return list(self._texts.items())


# -- what a task instance may pull ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskXComs:
    """The XComs one task of the run stored: JSON text by map index, then key.

    For a mapped task ``instances`` holds the instances that succeeded, in map-index
    order (an instance that stored nothing maps to an empty dict).
    """

    mapped: bool
    instances: Mapping[int, Mapping[str, str]]

    def value(self, key: str, map_index: int | None) -> Any:
        """One instance's value (None if absent); for a mapped task without an index,
        the list of every instance's value."""
        if map_index is None:
            if self.mapped:
                return [_decode(keys.get(key)) for keys in self.instances.values()]
            map_index = -1
        keys = self.instances.get(map_index)
        return None if keys is None else _decode(keys.get(key))


NO_XCOMS = TaskXComs(False, {})

#: The XComs a task instance may pull: every upstream task's (direct or not), by task id.
XComSnapshot = Mapping[str, TaskXComs]


def ancestors(op: AbstractOperator) -> Iterator[str]:
    """The ids of the tasks upstream of ``op``, directly or transitively."""
    dag = op.dag
    if dag is None:
        yield from sorted(op.upstream_task_ids)
        return
    seen: set[str] = set()
    todo = list(op.upstream_task_ids)
    while todo:
        task_id = todo.pop()
        if task_id in seen:
            continue
        seen.add(task_id)
        yield task_id
        todo.extend(dag.task_dict[task_id].upstream_task_ids)


def capture_xcoms(op: AbstractOperator, lookup: OutputLookup) -> dict[str, TaskXComs] | None:
    """The XComs ``op`` may pull (texts shared, not copied); None without upstream tasks."""
    if not op.upstream_task_ids:
        return None
    found: dict[str, TaskXComs] = {}
    for task_id in ancestors(op):
        try:
            found[task_id] = lookup.xcoms(task_id)
        except KeyError:  # not given (``airloop tasks test`` without --upstream)
            continue
    return found


# -- pulling --------------------------------------------------------------------------


def pull(
    *,
    task_id: str,
    map_index: int,
    snapshot: XComSnapshot | None,
    pushed: Pushed | None,
    task_ids: str | Iterable[str] | None,
    key: str | None,
    map_indexes: int | Iterable[int] | None,
    default: Any,
) -> Any:
    """``ti.xcom_pull`` with Airflow's shapes: one task id and at most one map index
    give a value; a list of either gives a list (one value per task id x map index;
    a mapped task without map_indexes gives the list of its instances' values)."""
    where = f"ti.xcom_pull in task {task_id!r}"
    key = XCOM_RETURN_KEY if key is None else key
    single = task_ids is None or isinstance(task_ids, str)
    ids: list[str] = (
        [task_id]
        if task_ids is None
        else [task_ids]
        if isinstance(task_ids, str)
        else list(task_ids)
    )
    if task_ids is None and map_indexes is None and map_index >= 0:
        map_indexes = map_index  # this task's own instance, as Airflow
    indexes: list[int | None]
    if map_indexes is None or isinstance(map_indexes, int):
        one_index, indexes = True, [map_indexes]
    else:
        one_index, indexes = False, list(map_indexes)
    values = []
    for tid, index in itertools.product(ids, indexes):
        value = _pull_one(where, task_id, snapshot, pushed, tid, key, index)
        values.append(default if value is None else value)
    return values[0] if single and one_index else values


def _pull_one(
    where: str,
    own: str,
    snapshot: XComSnapshot | None,
    pushed: Pushed | None,
    task_id: str,
    key: str,
    map_index: int | None,
) -> Any:
    if task_id == own:
        # What this try pushed so far (its return value is not stored yet).
        return None if pushed is None or key == XCOM_RETURN_KEY else pushed.get(key)
    if snapshot is None:
        raise XComPullError(
            f"{where}: XComs are not available to this task (it has no upstream tasks, "
            f"or is not run by airloop's engine); {task_id!r} cannot be pulled"
        )
    found = snapshot.get(task_id)
    if found is None:
        raise XComPullError(
            f"{where}: task {task_id!r} is not upstream of this task, so its XComs do not "
            f"travel with it; add the dependency ({task_id} >> {own}) to pull them"
        )
    return found.value(key, map_index)


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A task output put into a template field: rendering unwraps it, never renders
    it (as Airflow: a value that happens to contain ``{{`` stays as it is)."""

    value: Any


# -- subscripted outputs (``order["total"]``) --------------------------------------


def resolve_subscript(task_id: str, found: TaskXComs, path: tuple[Any, ...]) -> Any:
    """``output[path[0]][path[1]]...`` of ``task_id``: the XCom pushed under the key
    ``path[0]`` when there is one (multiple_outputs, ``xcom_push``), else the return
    value subscripted. A mapped task gives the list over its instances."""
    if found.mapped:
        return [_subscript(task_id, keys, path) for keys in found.instances.values()]
    return _subscript(task_id, found.instances.get(-1, {}), path)


def _subscript(task_id: str, keys: Mapping[str, str], path: tuple[Any, ...]) -> Any:
    head = path[0]
    if isinstance(head, str) and head != XCOM_RETURN_KEY and head in keys:
        value, rest = json.loads(keys[head]), path[1:]
    elif XCOM_RETURN_KEY in keys:
        value, rest = json.loads(keys[XCOM_RETURN_KEY]), path
    else:
        raise XComPullError(
            f"task {task_id!r} stored no XCom {head!r} and no return value to take {head!r} from"
        )
    done = ""
    for step in rest:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise XComPullError(
                f"the output of task {task_id!r}{done} has no item [{step!r}] "
                f"(it is a {type(value).__name__})"
            ) from None
        done += f"[{step!r}]"
    return value
