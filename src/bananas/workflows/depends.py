"""`.enqueue(_depends_on=[handle, ...])`: a job that waits for steps of a
running workflow (docs/workflows.md). It joins that workflow as a new step
(lua/wf_add.lua, in the workflow's partition): released by the transition
that settles its last dependency, failed or cancelled with the workflow."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from ..brokers.base import Broker
from ..brokers.workflow_records import (
    INPUT_FIELD,
    PREVIOUS,
    WF_FIELD,
    PlannedStep,
    Shape,
    member_of_raw,
    shape_ids,
)
from ..errors import BananasError
from ..handle import JobHandle
from ..keys import lane
from ..routes import DEFAULT_ROUTE
from ..specs import JobSpec
from .handle import WorkflowHandle
from .plan import _check, run_sync

if TYPE_CHECKING:
    from ..app import Bananas


async def _dependency(broker: Broker, dep: Any) -> tuple[str, Shape]:
    """(its workflow, the shape of its result) of one `_depends_on` entry."""
    if isinstance(dep, WorkflowHandle):
        head = await broker.workflow_head(dep.id)
        if head is None:
            raise BananasError(f"_depends_on: workflow {dep.id} is unknown (or expired)")
        return dep.id, head.output
    if isinstance(dep, JobHandle):
        workflow_id = dep.workflow_id or member_of_raw(await broker.get_record(dep.id))
        if not workflow_id:
            raise BananasError(
                f"_depends_on: job {dep.id} is not a step of a workflow (allowed: the "
                "handles of a workflow and of its steps; put plain jobs in a chain or group)"
            )
        return workflow_id, dep.id
    raise BananasError(
        f"_depends_on: got {type(dep).__name__}; allowed: WorkflowHandle or a step's JobHandle"
    )


async def enqueue_after(
    app: Bananas, broker: Broker, spec: JobSpec, deps: Iterable[Any]
) -> JobHandle:
    if not isinstance(broker, Broker):
        raise BananasError("workflows need a real broker (the test mode's has none)")
    _check(spec)
    await broker.prepare_workflows()
    found = [await _dependency(broker, d) for d in deps]
    if not found:
        raise BananasError("_depends_on needs at least one handle")
    workflows = {w for w, _ in found}
    if len(workflows) > 1:
        raise BananasError(
            f"_depends_on names steps of {len(workflows)} workflows; a job can wait for "
            "steps of one workflow (build one workflow with chain / group / chord)"
        )
    [workflow_id] = workflows
    shape: Shape = found[0][1] if len(found) == 1 else [s for _, s in found]
    step_id = broker.new_member_id(workflow_id)
    [job] = app.build_jobs([dataclasses.replace(spec, job_id=step_id)])
    fields = orjson.loads(job.record)
    fields[WF_FIELD] = workflow_id
    kind = "" if spec.ignore_previous else PREVIOUS
    if kind:
        fields[INPUT_FIELD] = kind
    step = PlannedStep(
        id=step_id,
        name=spec.name,
        lane=lane(spec.route or DEFAULT_ROUTE, spec.priority),
        record=orjson.dumps(fields),
        deps=list(dict.fromkeys(shape_ids(shape))),
        inputs=kind,
        shape=shape if kind else "",
        seq=1 << 30,
    )
    done = await broker.add_step(workflow_id, step)
    if done not in ("added", "released"):
        why = {
            "unknown": "is unknown (or expired)",
            "building": "is still being written",
            "no_step": "does not hold every step named",
        }.get(done, f"is already {done}")
        raise BananasError(f"_depends_on: workflow {workflow_id} {why}: the job was not enqueued")
    return JobHandle(app, step_id, workflow_id=workflow_id)


def enqueue_after_sync(app: Bananas, spec: JobSpec, deps: Iterable[Any]) -> JobHandle:
    listed = list(deps)
    return run_sync(app, lambda broker: enqueue_after(app, broker, spec, listed))


__all__ = ["enqueue_after", "enqueue_after_sync"]
