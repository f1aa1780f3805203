"""A workflow drawn as a graph for the dashboard's workflow page: nodes are
steps colored by state, edges their dependencies, laid out in layers (left
to right: a node's layer is one past the deepest of its dependencies),
computed here and drawn as inline SVG by templates/workflow.html.

A big group (more than COLLAPSE steps) is one node with its counts per
state, so a 10,000-member chord is three nodes wide, not 10,000 tall; the
page says which groups were collapsed. A graph still larger than
MAX_NODES is cut there (the page says so; `bananas workflow ID --json`
lists every step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..brokers.workflow_records import WorkflowView
from .render import duration
from .workflow_tree import GROUP, Node, build_tree, display_state

COLLAPSE = 25
MAX_NODES = 400
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 58, 56, 16, 12
STATE_ORDER = ("failed", "cancelled", "running", "queued", "waiting", "completed")
COUNT_LINE = 14  # a collapsed group lists one line per state (all six, zeros dimmed)
GROUP_H = 26 + COUNT_LINE * len(STATE_ORDER)


@dataclass(slots=True)
class GraphNode:
    id: str  # the step's id, or "group:<its first step's id>" for a collapsed group
    label: str
    state: str  # a step's display state; a collapsed group's "worst" one (STATE_ORDER)
    step: str | None = None  # the step id (a link to its job page)
    counts: dict[str, int] = field(default_factory=dict)  # a collapsed group only
    detail: str = ""  # attempts and duration, or the counts
    error: str = ""
    seq: int = 0
    layer: int = 0
    x: int = 0
    y: int = 0

    @property
    def h(self) -> int:
        return GROUP_H if self.step is None else NODE_H

    def count_lines(self) -> list[tuple[str, int, int]]:
        """A collapsed group's (state, count, y) lines, every state listed."""
        return [
            (state, self.counts.get(state, 0), 36 + i * COUNT_LINE)
            for i, state in enumerate(reversed(STATE_ORDER))
        ]

    def live(self) -> dict[str, Any]:
        """What the page's poll updates."""
        out: dict[str, Any] = {"state": self.state, "detail": self.detail, "error": self.error}
        if self.step is None:
            out["counts"] = {state: self.counts.get(state, 0) for state in STATE_ORDER}
        return out


@dataclass(slots=True)
class Graph:
    nodes: list[GraphNode]
    edges: list[tuple[GraphNode, GraphNode]]
    width: int
    height: int
    collapsed: list[GraphNode]
    cut: int  # nodes left out past MAX_NODES (0: none)
    total_nodes: int

    def live(self) -> dict[str, Any]:
        return {n.id: n.live() for n in self.nodes}


def graph_of(view: WorkflowView) -> Graph:
    tree = build_tree(view.steps)
    nodes: list[GraphNode] = []
    owner: dict[str, GraphNode] = {}
    collapsed: list[GraphNode] = []
    seq = {s.id: i for i, s in enumerate(view.steps)}
    _place(tree, nodes, owner, collapsed, seq)
    nodes.sort(key=lambda n: n.seq)
    total = len(nodes)
    cut = max(0, total - MAX_NODES)
    nodes = nodes[:MAX_NODES]
    shown = {id(n) for n in nodes}
    edges: dict[tuple[int, int], tuple[GraphNode, GraphNode]] = {}
    preds: dict[int, list[GraphNode]] = {}
    for step in view.steps:
        target = owner[step.id]
        if id(target) not in shown:
            continue
        for dep in step.depends_on:
            source = owner.get(dep)
            if source is None or source is target or id(source) not in shown:
                continue
            key = (id(source), id(target))
            if key not in edges:
                edges[key] = (source, target)
                preds.setdefault(id(target), []).append(source)
    _layout(nodes, preds)
    width = max((n.x for n in nodes), default=0) + NODE_W + PAD
    height = max((n.y + n.h for n in nodes), default=0) + PAD
    return Graph(nodes, list(edges.values()), width, height, collapsed, cut, total)


def _place(
    node: Node,
    nodes: list[GraphNode],
    owner: dict[str, GraphNode],
    collapsed: list[GraphNode],
    seq: dict[str, int],
) -> None:
    if node.step is not None:
        s = node.step
        g = GraphNode(
            id=s.id,
            label=s.name or "?",
            state=display_state(s),
            step=s.id,
            detail=_detail(display_state(s), s.attempts, s.duration_ms),
            error=(s.error or "") if display_state(s) != "completed" else "",
            seq=seq[s.id],
        )
        nodes.append(g)
        owner[s.id] = g
        return
    steps = node.steps()
    if node.kind == GROUP and len(steps) > COLLAPSE:
        counts = node.counts()
        g = GraphNode(
            id=f"group:{steps[0].id}",
            label=f"group of {len(steps):,} steps",
            state=next((s for s in STATE_ORDER if counts.get(s)), "completed"),
            counts=counts,
            detail=count_text(counts),
            seq=seq[steps[0].id],
        )
        nodes.append(g)
        collapsed.append(g)
        for s in steps:
            owner[s.id] = g
        return
    for child in node.children:
        _place(child, nodes, owner, collapsed, seq)


def count_text(counts: dict[str, int]) -> str:
    return " · ".join(f"{counts[s]:,} {s}" for s in reversed(STATE_ORDER) if counts.get(s))


def _detail(state: str, attempts: int | None, duration_ms: float | None) -> str:
    parts = []
    if state == "running" and attempts is not None:
        parts.append(f"attempt {attempts + 1}")  # the record counts finished attempts
    elif attempts:
        parts.append(f"{attempts} attempt{'' if attempts == 1 else 's'}")
    if duration_ms is not None:
        parts.append(duration(duration_ms / 1000))
    return " · ".join(parts)


def _layout(nodes: list[GraphNode], preds: dict[int, list[GraphNode]]) -> None:
    """Layers by longest path (dependencies come earlier in plan order),
    rows in plan order within a layer."""
    tops: dict[int, int] = {}  # per layer, where its next node goes
    for n in nodes:
        n.layer = max((p.layer + 1 for p in preds.get(id(n), ())), default=0)
        n.x = PAD + n.layer * (NODE_W + GAP_X)
        n.y = tops.get(n.layer, PAD)
        tops[n.layer] = n.y + n.h + GAP_Y


def edge_path(source: GraphNode, target: GraphNode) -> str:
    """An SVG path from the right middle of `source` to the left middle of `target`."""
    x1, y1 = source.x + NODE_W, source.y + source.h // 2
    x2, y2 = target.x, target.y + target.h // 2
    mid = (x1 + x2) // 2
    return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}"


def short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "COLLAPSE",
    "MAX_NODES",
    "NODE_H",
    "NODE_W",
    "Graph",
    "GraphNode",
    "count_text",
    "edge_path",
    "graph_of",
    "short",
]
