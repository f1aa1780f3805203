"""The records of workflows (docs/workflows.md) that brokers exchange with
their callers: the plan an enqueue writes, and the read API the views (the
`bananas workflow ID` tree, the dashboard graph, the metrics) build on.

A workflow is a set of steps (each one a job, the workflow's "member")
with depends-on edges, a failure policy and an output shape. Every step's
state lives in the workflow's own store (Redis: keys in the workflow's
partition; SQLite: the wf tables), written by the same transition that
settles the member job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson


class WorkflowState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every step final, none failing the workflow
    FAILED = "failed"  # a step ended dead-lettered or cancelled (policy "fail")
    CANCELLED = "cancelled"  # `WorkflowHandle.cancel()`

    @property
    def final(self) -> bool:
        return self is not WorkflowState.RUNNING


WORKFLOW_STATES = tuple(s.value for s in WorkflowState)


class StepState(StrEnum):
    WAITING = "waiting"  # a dependency is not final yet: not in any ready list
    QUEUED = "queued"  # released: queued, running or retrying (the job's own state says)
    COMPLETED = "completed"
    FAILED = "failed"  # dead-lettered (retries spent, MAX_STALLS, bad input) or deleted
    CANCELLED = "cancelled"


FINAL_STEP_STATES = frozenset({"completed", "failed", "cancelled"})

POLICIES = ("fail", "continue")
"""on_failure: "fail" (default) fails the workflow at the first step that
ends dead-lettered or cancelled; "continue" runs its dependents anyway with
the step's error in place of its result."""

# What a step receives from its dependencies, by keyword (record field wf_in).
PREVIOUS = "previous"  # a chain step: the previous element's result
RESULTS = "results"  # a chord callback: the list of its header's results
INPUT_KINDS = (PREVIOUS, RESULTS)

Shape = str | list[Any]
"""How results are assembled: a step id (its result) or a list of shapes
(a group: the list of its elements' results, in spec order)."""


WF_FIELD = "wf"  # a member's record: the id of its workflow
INPUT_FIELD = "wf_in"  # ... and, when it takes inputs, their keyword


def member_of(fields: dict[str, Any]) -> str:
    """The workflow a record's fields name ("" for a plain job)."""
    value = fields.get(WF_FIELD)
    return value if isinstance(value, str) else ""


def member_of_raw(raw: bytes | None) -> str:
    """`member_of` for a raw record (a plain job's costs one substring test)."""
    if not raw or b'"wf"' not in raw:
        return ""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    return member_of(fields) if isinstance(fields, dict) else ""


def shape_ids(shape: Shape) -> list[str]:
    """Every step id of a shape, in order."""
    if isinstance(shape, str):
        return [shape]
    out: list[str] = []
    for part in shape:
        out += shape_ids(part)
    return out


def assemble(shape: Shape, values: dict[str, Any]) -> Any:
    """The shape with each id replaced by its value."""
    if isinstance(shape, str):
        return values.get(shape)
    return [assemble(part, values) for part in shape]


def failed_value(step_id: str, state: str, error: str) -> bytes:
    """What stands in for a failed step's result under on_failure="continue"."""
    return orjson.dumps({"error": error, "step": step_id, "state": state})


@dataclass(slots=True)
class PlannedStep:
    """One step of a workflow being enqueued: its job (the record already
    carries `wf`, and `wf_in` when it takes inputs), its dependencies, and
    what it receives from them."""

    id: str
    name: str
    lane: str  # keys.lane(route, priority): its ready list is ready:{lane}:{name}
    record: bytes
    deps: list[str] = field(default_factory=list)
    inputs: str = ""  # "", PREVIOUS or RESULTS
    shape: Shape = ""  # the shape of what it receives (when inputs)
    seq: int = 0  # its place in the plan (the views list steps in this order)

    @property
    def member(self) -> str:
        """The queue member "lane:type" (keys.parse_member)."""
        return f"{self.lane}:{self.name}"

    def info(self) -> bytes:
        """The static part the views and the input reads use."""
        return orjson.dumps(
            {
                "name": self.name,
                "deps": self.deps,
                "in": self.inputs,
                "shape": self.shape,
                "seq": self.seq,
            }
        )


@dataclass(slots=True)
class WorkflowPlan:
    id: str
    policy: str
    steps: list[PlannedStep]
    output: Shape  # the workflow's result: a chain's last step, a group's list, ...
    created_ms: int = 0

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for step in self.steps:
            for dep in step.deps:
                out.setdefault(dep, []).append(step.id)
        return out


@dataclass(frozen=True, slots=True)
class StepView:
    """One step as the views draw it. `state` is the workflow's view
    (StepState); `job_state` the job's own (JOB_STATES, None while it
    waits or once expired); times are ISO 8601 from the job's result."""

    id: str
    name: str
    state: str
    depends_on: tuple[str, ...]
    job_state: str | None = None
    attempts: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    error: str | None = None
    inputs: str = ""  # what it receives from its dependencies: "", PREVIOUS or RESULTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "depends_on": list(self.depends_on),
            "job_state": self.job_state,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "inputs": self.inputs,
        }


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """A workflow as the views draw it (the views' read API: Workflows.workflow).
    Times are unix seconds of the broker's clock; `failed_step` and `error`
    say which step failed the workflow and why (policy "fail")."""

    id: str
    state: str
    policy: str
    total: int
    done: int
    created_at: float
    finished_at: float | None
    steps: list[StepView]
    failed_step: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "policy": self.policy,
            "total": self.total,
            "done": self.done,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "failed_step": self.failed_step,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True, slots=True)
class WorkflowHead:
    """The workflow's own fields without its steps: what a handle's result
    and the finality checks read (cheap for a 10,000-step workflow)."""

    id: str
    state: str
    policy: str
    total: int
    done: int
    output: Shape
    failed_step: str | None = None
    error: str | None = None


def started_from(finished: str | None, duration_ms: float | None) -> str | None:
    """When a finished step started: its finish time less its run time."""
    if not finished or duration_ms is None:
        return None
    try:
        end = datetime.fromisoformat(finished.replace("Z", "+00:00"))
    except ValueError:
        return None
    start = end - timedelta(milliseconds=duration_ms)
    return start.isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = [
    "FINAL_STEP_STATES",
    "INPUT_FIELD",
    "INPUT_KINDS",
    "POLICIES",
    "PREVIOUS",
    "RESULTS",
    "WF_FIELD",
    "WORKFLOW_STATES",
    "PlannedStep",
    "Shape",
    "StepState",
    "StepView",
    "WorkflowHead",
    "WorkflowPlan",
    "WorkflowState",
    "WorkflowView",
    "assemble",
    "failed_value",
    "member_of",
    "member_of_raw",
    "shape_ids",
    "started_from",
]
