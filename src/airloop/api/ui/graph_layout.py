"""The graph tab's layout, computed on the server: tasks in layers (``graphlib``'s
topological generations, left to right), ordered within a layer by a barycentre pass
to reduce edge crossings (members of a task group kept together), groups drawn as
boxes around their tasks, edges as curves with their labels. The template draws the
result as SVG; no layout code runs in the browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

NODE_W = 180
NODE_H = 36
LAYER_GAP = 70
ROW_GAP = 22
MARGIN = 24
GROUP_PAD = 10
SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Node:
    task_id: str
    label: str
    operator: str
    is_mapped: bool
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str | None
    path: str
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class GroupBox:
    group_id: str
    label: str
    depth: int
    x: float
    y: float
    w: float
    h: float


@dataclass(slots=True)
class Layout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[GroupBox] = field(default_factory=list)
    width: float = 0
    height: float = 0
    #: The SVG viewBox ("x y w h"): group boxes may reach left of the first layer.
    view_box: str = "0 0 0 0"


def _group_paths(tree: Mapping[str, Any]) -> dict[str, list[str]]:
    """task_id -> the ids of the groups holding it, outermost first."""
    paths: dict[str, list[str]] = {}

    def walk(group: Mapping[str, Any], path: list[str]) -> None:
        here = [*path, group["id"]] if group.get("id") else path
        for child in group.get("children", []):
            if "task_id" in child:
                paths[child["task_id"]] = here
            else:
                walk(child, here)

    walk(tree, [])
    return paths


def _layers(task_ids: Sequence[str], edges: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    known = set(task_ids)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for task_id in task_ids:
        sorter.add(task_id)
    for e in edges:
        if e["source"] in known and e["target"] in known:
            sorter.add(e["target"], e["source"])
    sorter.prepare()
    position = {t: i for i, t in enumerate(task_ids)}
    layers: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        layers.append(ready)
        sorter.done(*ready)
    return layers


def _centre(
    task_id: str,
    neighbours: Mapping[str, list[str]],
    ref: Mapping[str, int],
    current: Mapping[str, int],
) -> float:
    """The mean position of a task's neighbours in the reference layer (its own
    position when it has none there)."""
    seen = [ref[n] for n in neighbours.get(task_id, []) if n in ref]
    return sum(seen) / len(seen) if seen else float(current[task_id])


def _order(
    layers: list[list[str]],
    up: Mapping[str, list[str]],
    down: Mapping[str, list[str]],
    cluster: Mapping[str, str],
) -> None:
    """Barycentre sweeps, down then up, in place: each task moves to the mean position of
    its neighbours in the layer before; a group's tasks stay together (ordered by the
    group's mean)."""

    def sweep(order: range, neighbours: Mapping[str, list[str]], step: int) -> None:
        for i in order:
            ref = {t: k for k, t in enumerate(layers[i - step])}
            layer = layers[i]
            current = {t: k for k, t in enumerate(layer)}

            bary = {t: _centre(t, neighbours, ref, current) for t in layer}
            members: dict[str, list[float]] = {}
            for t in layer:
                members.setdefault(cluster[t], []).append(bary[t])
            mean = {g: sum(v) / len(v) for g, v in members.items()}
            layer.sort(key=lambda t: (mean[cluster[t]], cluster[t], bary[t], current[t]))

    for _ in range(SWEEPS):
        sweep(range(1, len(layers)), up, 1)
        sweep(range(len(layers) - 2, -1, -1), down, -1)


def layout(structure: Mapping[str, Any]) -> Layout:
    """Positions for every task, group box and edge of a serialized DAG's structure."""
    tasks = {t["task_id"]: t for t in structure.get("tasks", [])}
    edges = structure.get("edges", [])
    if not tasks:
        return Layout(
            width=2 * MARGIN, height=2 * MARGIN, view_box=f"0 0 {2 * MARGIN} {2 * MARGIN}"
        )
    paths = _group_paths(structure.get("task_group", {}))
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for e in edges:
        up.setdefault(e["target"], []).append(e["source"])
        down.setdefault(e["source"], []).append(e["target"])
    layers = _layers(list(tasks), edges)
    cluster = {t: (paths.get(t) or [""])[0] for t in tasks}
    _order(layers, up, down, cluster)

    tallest = max(len(layer) for layer in layers)
    nodes: dict[str, Node] = {}
    for i, layer in enumerate(layers):
        offset = (tallest - len(layer)) * (NODE_H + ROW_GAP) / 2
        for k, task_id in enumerate(layer):
            info = tasks[task_id]
            group = info.get("group_id")
            label = (
                task_id[len(group) + 1 :] if group and task_id.startswith(group + ".") else task_id
            )
            nodes[task_id] = Node(
                task_id=task_id,
                label=label,
                operator=str(info.get("operator", "")),
                is_mapped=bool(info.get("is_mapped")),
                x=MARGIN + i * (NODE_W + LAYER_GAP),
                y=MARGIN + 16 + offset + k * (NODE_H + ROW_GAP),
            )
    out = Layout(nodes=list(nodes.values()))
    for e in edges:
        if e["source"] not in nodes or e["target"] not in nodes:
            continue
        a, b = nodes[e["source"]], nodes[e["target"]]
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x, b.y + b.h / 2
        bend = max((x2 - x1) / 2, 20)
        out.edges.append(
            Edge(
                source=e["source"],
                target=e["target"],
                label=e.get("label"),
                path=f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}",
                label_x=(x1 + x2) / 2,
                label_y=(y1 + y2) / 2 - 4,
            )
        )
    members: dict[str, list[Node]] = {}
    for task_id, path in paths.items():
        if task_id in nodes:
            for group_id in path:
                members.setdefault(group_id, []).append(nodes[task_id])
    for group_id, group_nodes in members.items():
        depth = group_id.count(".")
        pad = GROUP_PAD * (4 - min(depth, 3))
        x0 = min(n.x for n in group_nodes) - pad
        y0 = min(n.y for n in group_nodes) - pad - 14
        x1 = max(n.x + n.w for n in group_nodes) + pad
        y1 = max(n.y + n.h for n in group_nodes) + pad
        out.groups.append(GroupBox(group_id, group_id, depth, x0, y0, x1 - x0, y1 - y0))
    out.groups.sort(key=lambda g: g.depth)
    left = min([0.0, *(g.x - 4 for g in out.groups)])
    top = min([0.0, *(g.y - 4 for g in out.groups)])
    right = max([MARGIN + len(layers) * (NODE_W + LAYER_GAP), *(g.x + g.w + 4 for g in out.groups)])
    bottom = max(
        [MARGIN * 2 + 16 + tallest * (NODE_H + ROW_GAP), *(g.y + g.h + 4 for g in out.groups)]
    )
    out.width, out.height = right - left, bottom - top
    out.view_box = f"{left:.0f} {top:.0f} {out.width:.0f} {out.height:.0f}"
    return out
