"""Task instance lists: filtered, sorted, paginated by offset or by a keyset cursor.

Every order ends with ``(dag_run_id, task_id, map_index)`` (unique), so a row's sort
key identifies it and the next page starts strictly after the last row: the cursor
is that key (base64 JSON), and the database seeks to it instead of counting past
OFFSET rows. NULL start dates and durations sort last both ways on every backend
(they are compared as a far-off sentinel).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, literal, or_, select

from airloop.core.states import TaskState
from airloop.store.errors import connect
from airloop.store.read_records import Page, TaskInstanceFilter, TaskInstanceRecord
from airloop.store.records import TaskInstanceRow
from airloop.store.runs import Store
from airloop.store.schema import dag_run, task_instance
from airloop.store.types import UtcDateTime

_ti = task_instance.c
_r = dag_run.c

#: Orders a task instance list accepts (``-`` for descending).
TI_ORDERS = ("map_index", "state", "start_date", "duration")

_LATE = datetime(9000, 1, 1, tzinfo=UTC)
_EARLY = datetime(1001, 1, 1, tzinfo=UTC)
_BIG = 1e30


@dataclass(frozen=True, slots=True)
class _Key:
    expr: ColumnElement[Any]
    desc: bool
    kind: str  # "int", "str", "float", "time": how a cursor value decodes


def _keys(order_by: str | None, dialect: str = "") -> list[_Key]:
    tie = [("dag_run_id", "int"), ("task_id", "str"), ("map_index", "int")]
    if order_by is None:
        return [_Key(_ti[name], False, kind) for name, kind in tie]
    desc = order_by.startswith("-")
    name = order_by.lstrip("-")
    if name not in TI_ORDERS:
        raise ValueError(
            f"order_by {order_by!r} is not one of {', '.join(TI_ORDERS)} (prefix - to reverse)"
        )
    first: _Key
    if name == "start_date":
        sentinel = literal(_EARLY if desc else _LATE, UtcDateTime())
        expr: ColumnElement[Any] = func.coalesce(_ti.start_date, sentinel)
        if dialect == "mysql":  # MySQL's COALESCE of a DATETIME and a parameter is text
            expr = cast(expr, UtcDateTime())
        first = _Key(expr, desc, "time")
    elif name == "duration":
        first = _Key(func.coalesce(_ti.duration, -_BIG if desc else _BIG), desc, "float")
    else:
        first = _Key(_ti[name], desc, "int" if name == "map_index" else "str")
    return [first, *(_Key(_ti[n], desc, kind) for n, kind in tie if n != name)]


def _encode(order_by: str | None, values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps({"o": order_by or "", "k": plain}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, order_by: str | None, keys: list[_Key]) -> list[Any]:
    """The sort key a cursor holds (ValueError saying what is wrong with it)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        values = data["k"]
        if data["o"] != (order_by or "") or len(values) != len(keys):
            raise ValueError("order")
        out: list[Any] = []
        for key, value in zip(keys, values, strict=True):
            if key.kind == "time":
                out.append(datetime.fromisoformat(value).astimezone(UTC))
            elif key.kind == "int":
                out.append(int(value))
            elif key.kind == "float":
                out.append(float(value))
            else:
                out.append(str(value))
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            "cursor is not one this list gave out (it belongs to a page of the same "
            "list with the same order_by)"
        ) from exc
    return out


def _after(keys: list[_Key], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``keys`` (lexicographic)."""
    options = []
    for i, key in enumerate(keys):
        same = [keys[j].expr == values[j] for j in range(i)]
        beyond = key.expr < values[i] if key.desc else key.expr > values[i]
        options.append(and_(*same, beyond))
    return or_(*options)


def _order(keys: list[_Key]) -> list[ColumnElement[Any]]:
    return [k.expr.desc() if k.desc else k.expr.asc() for k in keys]


def _where(f: TaskInstanceFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.dag_id is not None:
        where.append(_r.dag_id == f.dag_id)
    if f.run_id is not None:
        where.append(_r.run_id == f.run_id)
    if f.task_id is not None:
        where.append(_ti.task_id == f.task_id)
    if f.state is not None:
        where.append(_ti.state == f.state)
    if f.map_index is not None:
        where.append(_ti.map_index == f.map_index)
    if f.start_date_gte is not None:
        where.append(_ti.start_date >= f.start_date_gte)
    if f.start_date_lte is not None:
        where.append(_ti.start_date <= f.start_date_lte)
    return where


def _record(row: Any) -> TaskInstanceRecord:
    values = {k: row[k] for k in TaskInstanceRow.__dataclass_fields__}
    values["state"] = TaskState(values["state"])
    return TaskInstanceRecord(row["dag_id"], row["run_id"], TaskInstanceRow(**values))


_JOINED = task_instance.join(dag_run, _r.id == _ti.dag_run_id)


class TaskInstanceReads:
    """Task instances for the API (lists across runs, and one at a time)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    async def list(
        self,
        f: TaskInstanceFilter,
        *,
        order_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[TaskInstanceRecord]:
        """A page of task instances: after ``cursor`` when given (keyset), else at
        ``offset``. ValueError for an unknown order or a cursor of another list."""
        keys = _keys(order_by, self.engine.dialect.name)
        where = _where(f)
        sort_values = [k.expr.label(f"k{i}") for i, k in enumerate(keys)]
        query = select(task_instance, _r.dag_id, _r.run_id, *sort_values).select_from(_JOINED)
        page_where = list(where)
        if cursor is not None:
            page_where.append(_after(keys, _decode(cursor, order_by, keys)))
        query = query.where(*page_where).order_by(*_order(keys)).limit(limit + 1)
        if cursor is None and offset:
            query = query.offset(offset)
        count = select(func.count()).select_from(_JOINED).where(*where)
        async with connect(self.engine) as conn:
            total = int((await conn.execute(count)).scalar() or 0)
            rows = list((await conn.execute(query)).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = _encode(order_by, [last[f"k{i}"] for i in range(len(keys))])
        return Page([_record(r) for r in rows], total, next_cursor)

    async def get(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> TaskInstanceRecord | None:
        query = (
            select(task_instance, _r.dag_id, _r.run_id)
            .select_from(_JOINED)
            .where(
                _r.dag_id == dag_id,
                _r.run_id == run_id,
                _ti.task_id == task_id,
                _ti.map_index == map_index,
            )
        )
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _record(row)
