"""The grid's body as HTML, built in Python: 25 runs x 10,000+ tasks' rows is a few
thousand cells, and escaping each run id and task id once (not once per cell, as a
template loop does) keeps the page well under its server-time budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote

from markupsafe import Markup

from airloop.api.ui.grid_model import Row, segments, single_state, summary
from airloop.store.records import DagRunRow


def _q(value: str) -> str:
    return quote(value, safe="")


def _bar(counts: Mapping[str, int]) -> str:
    rects = "".join(
        f'<rect class="seg" data-state="{escape(s.state)}" data-count="{s.count}" '
        f'x="{s.x:g}" y="0" width="{s.width:g}" height="10"></rect>'
        for s in segments(counts)
    )
    return (
        '<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" '
        f'aria-hidden="true">{rects}</svg>'
    )


def grid_body(
    dag_id: str,
    runs: Sequence[DagRunRow],
    task_rows: Sequence[Row],
    counts: Mapping[tuple[str, str], Mapping[str, int]],
) -> Markup:
    """The ``<tr>`` rows of ``#grid``: group rows (collapsible) and task rows whose cells
    carry ``data-run-id``/``data-task-id`` and a ``data-state`` (a square) or an SVG
    ``.bar`` of per-state counts (a mapped task)."""
    base = f"/dags/{_q(dag_id)}/runs/"
    cols = [(r.run_id, escape(r.run_id), base + escape(_q(r.run_id))) for r in runs]
    out: list[str] = []
    width = len(cols) or 1
    for row in task_rows:
        groups = escape(" ".join(row.groups))
        label = escape(row.label)
        rid = escape(row.id)
        if row.is_group:
            out.append(
                f'<tr class="group-row" data-group-id="{rid}" data-groups="{groups}" '
                f'data-depth="{row.depth}"><th class="task-name depth-{row.depth}">'
                f'<button type="button" class="group-toggle" data-group-id="{rid}" '
                f'aria-expanded="true">▾</button> {label}</th>'
                f'<td class="group-fill" colspan="{width}"></td></tr>'
            )
            continue
        mapped_row = " mapped" if row.is_mapped else ""
        mark = ' <span class="mapped-mark">[ ]</span>' if row.is_mapped else ""
        out.append(
            f'<tr class="task-row{mapped_row}" data-task-row="{rid}" data-groups="{groups}" '
            f'data-depth="{row.depth}"><th class="task-name depth-{row.depth}" '
            f'title="{escape(row.operator)}">{label}{mark}</th>'
        )
        tail = "/tasks/" + escape(_q(row.id))
        for run_id, erun, href in cols:
            cell = counts.get((run_id, row.id)) or {}
            total = sum(cell.values())
            ids = f'data-run-id="{erun}" data-task-id="{rid}"'
            if row.is_mapped or total > 1:
                out.append(
                    f'<td class="cell mapped" {ids} data-total="{total}" '
                    f'data-summary="{escape(summary(cell))}"><a href="{href}{tail}">'
                    f"{_bar(cell) if total else ''}</a></td>"
                )
            else:
                state = single_state(cell)
                attr = f' data-state="{escape(state)}"' if state else ""
                out.append(
                    f'<td class="cell" {ids}{attr}><a href="{href}{tail}/-1">'
                    '<span class="sq"></span></a></td>'
                )
        out.append("</tr>")
    return Markup("".join(out))
