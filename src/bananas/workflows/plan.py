"""Flatten a canvas into a WorkflowPlan: one step per JobSpec, with its
dependencies and what it receives (workflow_records.py), the member
records marked with `wf` (and `wf_in`), all ids in the workflow's
partition (Workflows.new_workflow_ids)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..brokers.base import Broker
from ..brokers.workflow_records import (
    INPUT_FIELD,
    POLICIES,
    PREVIOUS,
    RESULTS,
    WF_FIELD,
    PlannedStep,
    Shape,
    WorkflowPlan,
    shape_ids,
)
from ..errors import BananasError
from ..keys import lane
from ..routes import DEFAULT_ROUTE
from ..specs import JobSpec
from .canvas import Canvas, Chain, Chord, Group
from .handle import WorkflowHandle

if TYPE_CHECKING:
    from ..app import Bananas

T = TypeVar("T")


def _app_of(canvas: Canvas, app: Bananas | None) -> Bananas:
    if app is not None:
        return app
    for spec in canvas.specs():
        if spec.app is not None:
            return spec.app  # type: ignore[no-any-return]
    raise BananasError("enqueue(app=...) needed: no spec of this workflow names its app")


def _check(spec: JobSpec) -> None:
    if spec.unique_for is not None:
        raise BananasError(f"{spec.name!r} is a unique job type: a workflow step cannot be unique")
    if spec.delay is not None or spec.at is not None:
        raise BananasError(f"{spec.name!r}: _delay / _at are not allowed on a workflow step")
    if spec.job_id is not None:
        raise BananasError(f"{spec.name!r}: _job_id is not allowed on a workflow step")


class _Builder:
    def __init__(self, ids: list[str]) -> None:
        self.ids = iter(ids)
        self.steps: list[tuple[JobSpec, str, list[str], str, Shape]] = []

    def build(self, node: Any, deps: list[str], prev: Shape | None) -> Shape:
        if isinstance(node, JobSpec):
            step = next(self.ids)
            kind, shape = ("", "") if prev is None or node.ignore_previous else (PREVIOUS, prev)
            self.steps.append((node, step, deps, kind, shape))
            return step
        if isinstance(node, Group):
            return [self.build(m, deps, prev) for m in node.members]
        if isinstance(node, Chain):
            last: Shape | None = prev
            for element in node.steps:
                last = self.build(element, deps, last)
                deps = shape_ids(last)
            assert last is not None
            return last
        if isinstance(node, Chord):
            header = self.build(node.header, deps, prev)
            if isinstance(node.callback, JobSpec):
                step = next(self.ids)
                kind, shape = ("", "") if node.callback.ignore_previous else (RESULTS, header)
                self.steps.append((node.callback, step, shape_ids(header), kind, shape))
                return step
            return self.build(node.callback, shape_ids(header), header)
        raise BananasError(f"not a workflow node: {node!r}")


def plan_of(app: Bananas, broker: Broker, canvas: Canvas, policy: str) -> WorkflowPlan:
    if policy not in POLICIES:
        raise BananasError(f"on_failure={policy!r} (allowed: {', '.join(POLICIES)})")
    specs = canvas.specs()
    for spec in specs:
        _check(spec)
    wf_id, ids = broker.new_workflow_ids(len(specs))
    builder = _Builder(ids)
    output = builder.build(canvas, [], None)
    jobs = app.build_jobs(
        [dataclasses.replace(spec, job_id=step) for spec, step, *_ in builder.steps]
    )
    steps: list[PlannedStep] = []
    for (spec, step, deps, kind, shape), job in zip(builder.steps, jobs, strict=True):
        fields = orjson.loads(job.record)
        fields[WF_FIELD] = wf_id
        if kind:
            fields[INPUT_FIELD] = kind
        route = spec.route or DEFAULT_ROUTE
        steps.append(
            PlannedStep(
                id=step,
                name=spec.name,
                lane=lane(route, spec.priority),
                record=orjson.dumps(fields),
                deps=deps,
                inputs=kind,
                shape=shape,
                seq=len(steps),
            )
        )
    return WorkflowPlan(wf_id, policy, steps, output)


async def enqueue_async(canvas: Canvas, policy: str, app: Bananas | None) -> WorkflowHandle:
    owner = _app_of(canvas, app)
    broker = owner.async_broker()
    return await _enqueue(owner, broker, canvas, policy)


async def _enqueue(app: Bananas, broker: Broker, canvas: Canvas, policy: str) -> WorkflowHandle:
    if not isinstance(broker, Broker):
        raise BananasError("workflows need a real broker (the test mode's has none)")
    await broker.prepare_workflows()
    plan = plan_of(app, broker, canvas, policy)
    await broker.enqueue_workflow(plan)
    return WorkflowHandle(app, plan.id, [s.id for s in plan.steps])


def enqueue_sync(canvas: Canvas, policy: str, app: Bananas | None) -> WorkflowHandle:
    owner = _app_of(canvas, app)
    return run_sync(owner, lambda broker: _enqueue(owner, broker, canvas, policy))


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bananas-workflows")


def run_sync(app: Bananas, fn: Callable[[Broker], Awaitable[T]]) -> T:
    """A workflow call from plain code: on its own loop and broker, in a
    helper thread (a caller inside a running loop is not blocked on it)."""

    async def main() -> T:
        broker = app.new_broker()
        try:
            return await fn(broker)
        finally:
            await broker.close()

    return _POOL.submit(asyncio.run, main()).result()


__all__ = ["enqueue_async", "enqueue_sync", "plan_of", "run_sync"]
