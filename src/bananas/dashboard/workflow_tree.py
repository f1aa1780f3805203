"""A workflow's steps as the tree it was built from (chain, group, chord),
for the `bananas workflow ID` tree and the dashboard graph.

The broker keeps steps and their depends-on edges, not the canvas; the
tree is read back from them. A plan lists its steps depth first (each
chain, group or chord is a contiguous run of steps), so a run of steps is
split the way it was built: into a group where no later step depends on an
earlier one of the run, else into a chain where every later step that
depends on the run's head depends on exactly its last steps (its sinks).
A chain element that is one step taking `results` after a group is a chord
callback. A run that splits neither way (a DAG made with `_depends_on`) is
shown as a list of steps, each saying what it waits for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..brokers.workflow_records import RESULTS, StepView

CHAIN, GROUP, CHORD, STEPS = "chain", "group", "chord", "steps"
DISPLAY_STATES = ("waiting", "queued", "running", "completed", "failed", "cancelled")


def display_state(step: StepView) -> str:
    """The workflow's state of a step, with `running` told apart from queued."""
    if step.state == "queued" and step.job_state == "running":
        return "running"
    return step.state


@dataclass(slots=True)
class Node:
    """A step (`step` set, kind "step") or a composite of `children`."""

    kind: str
    step: StepView | None = None
    children: list[Node] = field(default_factory=list)

    def steps(self) -> list[StepView]:
        if self.step is not None:
            return [self.step]
        return [s for c in self.children for s in c.steps()]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps():
            state = display_state(s)
            out[state] = out.get(state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        if self.step is not None:
            return {"kind": "step", **self.step.to_dict(), "state": display_state(self.step)}
        return {"kind": self.kind, "children": [c.to_dict() for c in self.children]}


def build_tree(steps: list[StepView]) -> Node:
    """The tree of a workflow's steps (in plan order)."""
    if not steps:
        return Node(STEPS)
    tree = _split(steps)
    if not _matches(tree, frozenset()):  # not made by chain/group/chord alone
        return Node(STEPS, children=[Node("step", s) for s in steps])
    return tree


def _split(run: list[StepView]) -> Node:
    if len(run) == 1:
        return Node("step", run[0])
    parts = _group_parts(run)
    if len(parts) > 1:
        return Node(GROUP, children=[_split(p) for p in parts])
    cuts = _chain_cuts(run)
    if not cuts:
        return Node(STEPS, children=[Node("step", s) for s in run])
    bounds = [0, *cuts, len(run)]
    elements = [_split(run[a:b]) for a, b in itertools.pairwise(bounds)]
    flat = [e for el in elements for e in (el.children if el.kind == CHAIN else [el])]
    return _chords(flat)


def _group_parts(run: list[StepView]) -> list[list[StepView]]:
    """Cut the run wherever no later step depends on an earlier one."""
    last_user = _last_users(run)
    parts: list[list[StepView]] = []
    start = reach = 0
    for i in range(len(run)):
        reach = max(reach, last_user.get(i, i))
        if reach == i:
            parts.append(run[start : i + 1])
            start = i + 1
    return parts


def _last_users(run: list[StepView]) -> dict[int, int]:
    """For each index, the last index of a step of the run depending on it."""
    index = {s.id: i for i, s in enumerate(run)}
    last_user: dict[int, int] = {}
    for i, s in enumerate(run):
        for dep in s.depends_on:
            j = index.get(dep)
            if j is not None:
                last_user[j] = i
    return last_user


def _chain_cuts(run: list[StepView]) -> list[int]:
    """Where the run is cut into chain elements, in one pass (a chain may
    have 10,000 steps). A cut at k ends the element that began at the last
    cut (`start`) when: every step from k on depends on a step from `start`
    on (no later step begins on its own), no step from k on depends on a
    step of the element that is not one of its last steps (its sinks), and
    run[k] depends on exactly those sinks. (That the other steps fit too is
    checked once for the whole tree: `_matches`.)"""
    index = {s.id: i for i, s in enumerate(run)}
    last_user: dict[int, int] = {}
    latest_dep = [-1] * len(run)  # per step: the index of its latest dependency in the run
    for i, s in enumerate(run):
        for dep in s.depends_on:
            j = index.get(dep)
            if j is not None:
                last_user[j] = i
                latest_dep[i] = max(latest_dep[i], j)
    lowest = [0] * (len(run) + 1)  # lowest[k]: min latest_dep of run[k:]
    lowest[len(run)] = len(run)
    for i in range(len(run) - 1, -1, -1):
        lowest[i] = min(lowest[i + 1], latest_dep[i])
    cuts: list[int] = []
    start, reach = 0, 0  # reach: the last user of a step of the element that is not a sink
    head: set[str] = set()
    sinks: set[str] = set()
    for k in range(1, len(run)):
        step = run[k - 1]
        head.add(step.id)
        sinks.add(step.id)
        for dep in step.depends_on:
            if dep in sinks:
                sinks.discard(dep)
                reach = max(reach, last_user.get(index[dep], 0))
        if lowest[k] < start or reach >= k:
            continue
        if {d for d in run[k].depends_on if d in head} == sinks:
            cuts.append(k)
            start, reach = k, 0
            head, sinks = set(), set()
    return cuts


def _matches(node: Node, entry: frozenset[str]) -> bool:
    """Whether the tree implies exactly the steps' depends-on edges."""
    return _exits(node, entry) is not None


def _exits(node: Node, entry: frozenset[str]) -> frozenset[str] | None:
    """The node's last steps if its steps depend as the tree says (on
    `entry` at its start), else None."""
    if node.step is not None:
        return frozenset({node.step.id}) if set(node.step.depends_on) == entry else None
    if node.kind == STEPS:  # listed as they are: no shape to check
        inside = {s.id for s in node.steps()}
        used = {d for s in node.steps() for d in s.depends_on}
        return frozenset(inside - used)
    if node.kind == GROUP:
        out: set[str] = set()
        for child in node.children:
            found = _exits(child, entry)
            if found is None:
                return None
            out |= found
        return frozenset(out)
    current: frozenset[str] | None = entry  # a chain, a chord (header, then callback)
    for child in node.children:
        assert current is not None
        current = _exits(child, current)
        if current is None:
            return None
    return current


def _chords(elements: list[Node]) -> Node:
    """A chain's elements, with a group followed by a step taking `results`
    made one chord element (header, callback)."""
    out: list[Node] = []
    for element in elements:
        step = element.step
        if step is not None and step.inputs == RESULTS and out and out[-1].kind == GROUP:
            out[-1] = Node(CHORD, children=[out[-1], element])
        else:
            out.append(element)
    return out[0] if len(out) == 1 else Node(CHAIN, children=out)


__all__ = [
    "CHAIN",
    "CHORD",
    "DISPLAY_STATES",
    "GROUP",
    "STEPS",
    "Node",
    "build_tree",
    "display_state",
]
