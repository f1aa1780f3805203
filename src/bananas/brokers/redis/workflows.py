"""Workflows on Redis (docs/workflows.md): the calls of lua/wf_enqueue.lua
(write a plan, start it), lua/wf_complete.lua (a member completes and its
workflow moves in the same script), lua/wf_cancel.lua, and the reads of the
workflow's keys (keys.WF_PARTS) for the handles, the worker and the views.

Every key of a workflow and every member's keys are in one partition (on a
cluster the ids are chosen so: partitioned.py), so each call is one script
on one slot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ...job import new_job_ids, now_iso, wire_durations
from ...keys import Keys
from ..records import THROUGHPUT_KEEP_S, Delivery
from ..workflow_records import (
    PlannedStep,
    StepView,
    WorkflowHead,
    WorkflowPlan,
    WorkflowView,
    started_from,
)
from . import workflow_scripts
from .connection import redis_errors
from .partitions import partition_of
from .script_loader import Call

# Steps per wf_enqueue call: bounds one script's run time and size.
WF_CHUNK = 500
# Results per HMGET of a big workflow's results.
READ_CHUNK = 2000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def head_of(workflow_id: str, data: dict[bytes, bytes]) -> WorkflowHead | None:
    if not data or b"state" not in data:
        return None

    def get(name: str) -> str:
        return _text(data.get(name.encode(), b""))

    return WorkflowHead(
        id=workflow_id,
        state=get("state"),
        policy=get("policy"),
        total=int(get("total") or 0),
        done=int(get("done") or 0),
        output=orjson.loads(data.get(b"output") or b'""'),
        failed_step=get("failed_step") or None,
        error=get("error") or None,
    )


class RedisWorkflows:
    """RedisBroker's workflow calls (mixed in; it provides the rest)."""

    keys: Keys
    _ttl: str
    _publish: str
    redis: Any
    _run: Callable[[Call], Awaitable[Any]]

    def _wf_context(self) -> str:
        return self.keys.wf_context(self._ttl, self._publish, now_iso())

    async def _complete_member(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        whole_ms, us = wire_durations(duration_ms)
        call = workflow_scripts.wf_complete(
            active=k.active,
            leases=k.leases,
            stalls=k.stalls,
            completed=k.completed,
            record_key=k.job(job_id),
            result_key=k.result(job_id),
            id=job_id,
            token=delivery.token,
            record=record,
            completed_at=now_iso(),
            duration_ms=whole_ms,
            duration_us=us,
            result=result if result is not None else b"",
            notify=k.notify_channel(job_id),
            ttl=self._ttl,
            throughput_prefix=k.throughput_prefix,
            throughput_keep=THROUGHPUT_KEEP_S,
            publish=self._publish,
            wf=delivery.workflow or "",
            wf_context=self._wf_context(),
        )
        return bool(await self._run(call))

    async def enqueue_workflow(self, plan: WorkflowPlan) -> None:
        k, wf = self.keys, plan.id
        dependents = plan.dependents()
        steps = plan.steps
        chunks = [steps[i : i + WF_CHUNK] for i in range(0, len(steps), WF_CHUNK)] or [[]]
        for n, chunk in enumerate(chunks):
            call = workflow_scripts.wf_enqueue(
                wf=k.wf(wf),
                steps=k.wf(wf, "steps"),
                info=k.wf(wf, "info"),
                wait=k.wf(wf, "wait"),
                rec=k.wf(wf, "rec"),
                queue=k.wf(wf, "queue"),
                next=k.wf(wf, "next"),
                res=k.wf(wf, "res"),
                workflows=k.workflows,
                counts=k.workflow_counts,
                queues=k.queues,
                index=k.nonempty,
                id=wf,
                policy=plan.policy,
                total=len(steps),
                output=orjson.dumps(plan.output),
                start=1 if n == len(chunks) - 1 else 0,
                ttl=self._ttl,
                job_prefix=k.job_prefix,
                ready_prefix=k.ready_prefix,
                marker_prefix=k.marker_prefix,
                step=[
                    (
                        s.id,
                        s.record,
                        s.member,
                        len(s.deps),
                        ",".join(dependents.get(s.id, ())),
                        s.info(),
                    )
                    for s in chunk
                ],
            )
            await self._run(call)

    async def add_step(self, workflow_id: str, step: PlannedStep) -> str:
        k, wf = self.keys, workflow_id
        call = workflow_scripts.wf_add(
            wf=k.wf(wf),
            steps=k.wf(wf, "steps"),
            info=k.wf(wf, "info"),
            wait=k.wf(wf, "wait"),
            rec=k.wf(wf, "rec"),
            queue=k.wf(wf, "queue"),
            next=k.wf(wf, "next"),
            queues=k.queues,
            index=k.nonempty,
            id=wf,
            step=step.id,
            record=step.record,
            member=step.member,
            info_json=step.info(),
            job_prefix=k.job_prefix,
            ready_prefix=k.ready_prefix,
            marker_prefix=k.marker_prefix,
            dep=[(d,) for d in step.deps],
        )
        return _text(await self._run(call))

    async def workflow_head(self, workflow_id: str) -> WorkflowHead | None:
        with redis_errors():
            data = await self.redis.hgetall(self.keys.wf(workflow_id))
        return head_of(workflow_id, data)

    async def workflow(self, workflow_id: str) -> WorkflowView | None:
        k = self.keys
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(k.wf(workflow_id))
                pipe.hgetall(k.wf(workflow_id, "steps"))
                pipe.hgetall(k.wf(workflow_id, "info"))
                data, states, infos = await pipe.execute()
        head = head_of(workflow_id, data)
        if head is None:
            return None
        parsed = {_text(i): orjson.loads(v) for i, v in infos.items()}
        ids = sorted(parsed, key=lambda step: int(parsed[step].get("seq", 0)))
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for step in ids:
                    pipe.get(k.job(step))
                    pipe.hmget(
                        k.result(step),
                        "status",
                        "completed_at",
                        "duration_ms",
                        "error",
                        "cancelled",
                    )
                    pipe.hexists(k.leases, step)
                found = await pipe.execute()
        steps = []
        for n, step in enumerate(ids):
            info = parsed[step]
            raw, result, leased = found[3 * n : 3 * n + 3]
            steps.append(
                step_view(step, info, _text(states.get(step.encode(), b"")), raw, result, leased)
            )
        created = int(_text(data.get(b"created_ms", b"0")) or 0) / 1000
        finished = _text(data.get(b"finished_ms", b"")) or ""
        return WorkflowView(
            id=workflow_id,
            state=head.state,
            policy=head.policy,
            total=head.total,
            done=head.done,
            created_at=created,
            finished_at=int(finished) / 1000 if finished else None,
            steps=steps,
            failed_step=head.failed_step,
            error=head.error,
        )

    async def _count_workflows(self, state: str) -> int:
        with redis_errors():
            value = await self.redis.hget(self.keys.workflow_counts, state)
        return max(0, int(value or 0))

    async def list_workflows(self, limit: int = 50) -> list[str]:
        with redis_errors():
            ids = await self.redis.zrange(self.keys.workflows, 0, max(0, limit - 1))
        return [_text(i) for i in ids]

    async def cancel_workflow(self, workflow_id: str) -> str | None:
        call = workflow_scripts.wf_cancel(
            wf=self.keys.wf(workflow_id), id=workflow_id, wf_context=self._wf_context()
        )
        reply = _text(await self._run(call))
        return None if reply == "unknown" else reply

    async def workflow_values(self, workflow_id: str, ids: list[str]) -> dict[str, bytes]:
        key = self.keys.wf(workflow_id, "res")
        out: dict[str, bytes] = {}
        with redis_errors():
            for i in range(0, len(ids), READ_CHUNK):
                part = ids[i : i + READ_CHUNK]
                for step, value in zip(part, await self.redis.hmget(key, part), strict=True):
                    if value is not None:
                        out[step] = value
        return out

    async def _step_info(self, workflow_id: str, step_id: str) -> bytes | None:
        with redis_errors():
            value: bytes | None = await self.redis.hget(self.keys.wf(workflow_id, "info"), step_id)
        return value


def step_view(
    step: str, info: dict[str, Any], state: str, raw: bytes | None, result: list[Any], leased: Any
) -> StepView:
    """A step from its workflow's fields, its record and its result hash."""
    attempts = None
    job_state = None
    if raw:
        try:
            fields = orjson.loads(raw)
            attempts = fields.get("attempts")
            job_state = "scheduled" if fields.get("status") == "scheduled" else "queued"
        except orjson.JSONDecodeError:
            pass
    status, finished, duration, error, cancelled = (
        _text(v) if v is not None else None for v in result
    )
    if leased:
        job_state = "running"
    elif status is not None:
        job_state = "cancelled" if cancelled else ("completed" if status == "completed" else "dead")
    duration_ms = float(duration) if duration else None
    return StepView(
        id=step,
        name=str(info.get("name", "")),
        state=state,
        depends_on=tuple(info.get("deps") or ()),
        job_state=job_state,
        attempts=attempts if isinstance(attempts, int) else None,
        started_at=started_from(finished, duration_ms),
        finished_at=finished,
        duration_ms=duration_ms,
        error=error or None,
        inputs=str(info.get("in") or ""),
    )


class PartitionedWorkflows:
    """PartitionedBroker's workflow calls: each goes to the workflow's
    partition, which holds every one of its members (`new_workflow_ids`)."""

    count: int

    async def parts(self) -> list[Any]:
        raise NotImplementedError

    async def on(self, p: int, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    async def on_job(self, job_id: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    def new_workflow_ids(self, count: int) -> tuple[str, list[str]]:
        """Member ids by rejection sampling: uuid4s until `count` fall in
        the workflow id's partition (about `partitions` draws per id)."""
        if self.count == 0:
            raise RuntimeError("new_workflow_ids before the partitions are known")
        first = new_job_ids(1)[0]
        home = partition_of(first, self.count)
        out: list[str] = []
        while len(out) < count:
            draw = new_job_ids(max(16, (count - len(out)) * self.count))
            out += [i for i in draw if partition_of(i, self.count) == home]
        return first, out[:count]

    async def prepare_workflows(self) -> None:
        await self.parts()

    def new_member_id(self, workflow_id: str) -> str:
        home = partition_of(workflow_id, self.count)
        while True:
            for candidate in new_job_ids(16 * max(1, self.count)):
                if partition_of(candidate, self.count) == home:
                    return candidate

    async def add_step(self, workflow_id: str, step: PlannedStep) -> str:
        reply: str = await self.on_job(workflow_id, lambda b: b.add_step(workflow_id, step))
        return reply

    async def enqueue_workflow(self, plan: WorkflowPlan) -> None:
        await self.on_job(plan.id, lambda b: b.enqueue_workflow(plan))

    async def workflow(self, workflow_id: str) -> WorkflowView | None:
        found: WorkflowView | None = await self.on_job(
            workflow_id, lambda b: b.workflow(workflow_id)
        )
        return found

    async def workflow_head(self, workflow_id: str) -> WorkflowHead | None:
        found: WorkflowHead | None = await self.on_job(
            workflow_id, lambda b: b.workflow_head(workflow_id)
        )
        return found

    async def _count_workflows(self, state: str) -> int:
        parts = await self.parts()
        counts = await asyncio.gather(
            *(self.on(p, lambda b: b._count_workflows(state)) for p in range(len(parts)))
        )
        return sum(counts)

    async def list_workflows(self, limit: int = 50) -> list[str]:
        parts = await self.parts()
        found = await asyncio.gather(
            *(self.on(p, lambda b: b.list_workflows(limit)) for p in range(len(parts)))
        )
        return [i for part in found for i in part][:limit]

    async def cancel_workflow(self, workflow_id: str) -> str | None:
        state: str | None = await self.on_job(workflow_id, lambda b: b.cancel_workflow(workflow_id))
        return state

    async def workflow_values(self, workflow_id: str, ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = await self.on_job(
            workflow_id, lambda b: b.workflow_values(workflow_id, ids)
        )
        return found

    async def _step_info(self, workflow_id: str, step_id: str) -> bytes | None:
        found: bytes | None = await self.on_job(
            workflow_id, lambda b: b._step_info(workflow_id, step_id)
        )
        return found


__all__ = ["PartitionedWorkflows", "RedisWorkflows"]
