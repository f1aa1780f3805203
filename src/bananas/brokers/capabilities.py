"""The Broker protocol's capabilities beside the worker path (base.py):
inspection for the CLI, the dashboard and the metrics, the fleet registry,
operator actions, the optional routing of foreign records, and the
optional concurrency limits. Each public
method does the bookkeeping every backend shares and calls the backend's
`_name` primitives; brokers/base.py composes them into `Broker`."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from ..errors import BananasError, UniqueConflict
from ..job import decode_record, new_job_ids
from ..keys import lane
from ..rates import RESERVED, RateUsage
from ..vocabulary import JobState, WorkerInfo, check_state
from .records import (
    BrokerStats,
    CancelOutcome,
    DeadInfo,
    DeadLetter,
    Delivery,
    JobSummary,
    Lease,
    QueueRef,
    Throughput,
    Unique,
    decode_workers,
    encode_worker,
    record_unique,
)
from .workflow_records import (
    WORKFLOW_STATES,
    PlannedStep,
    WorkflowHead,
    WorkflowPlan,
    WorkflowView,
    assemble,
    shape_ids,
)


class Inspection(abc.ABC):
    """Read-only views for the CLI, the dashboard and the metrics."""

    @abc.abstractmethod
    async def stats(self) -> BrokerStats: ...

    @abc.abstractmethod
    async def oldest_ready_age(self) -> dict[str, float]:
        """Per priority, seconds since the oldest ready job was created (0 if none)."""

    @abc.abstractmethod
    async def active_by_queue(self) -> dict[QueueRef, int]:
        """Leased (running) jobs per (priority, job type)."""

    async def list_jobs(
        self, state: str, offset: int = 0, limit: int = 50, job_type: str | None = None
    ) -> list[JobSummary]:
        """Jobs in one of JOB_STATES, newest first except queued (next to run
        first) and scheduled (soonest due first)."""
        return await self._list_jobs(check_state(state), offset, limit, job_type)

    @abc.abstractmethod
    async def _list_jobs(
        self, state: JobState, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]: ...

    async def count_jobs(self, state: str, job_type: str | None = None) -> int:
        return await self._count_jobs(check_state(state), job_type)

    @abc.abstractmethod
    async def _count_jobs(self, state: JobState, job_type: str | None) -> int: ...

    @abc.abstractmethod
    async def job_state(self, job_id: str) -> str | None:
        """Which of JOB_STATES the job is in, None if unknown."""

    @abc.abstractmethod
    async def get_dead_info(self, job_id: str) -> DeadInfo | None: ...

    @abc.abstractmethod
    async def job_lease(self, job_id: str) -> Lease | None:
        """Who holds the job's lease (a running job); None when nobody does."""

    @abc.abstractmethod
    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        """Completed / failed attempts per minute for the last `minutes` minutes
        of the broker's clock, oldest first, one entry per minute (zeros included)."""


class Registry(abc.ABC):
    """The fleet: workers and schedulers say who they are on a heartbeat."""

    async def heartbeat_worker(self, info: WorkerInfo) -> None:
        """Register or refresh the entry `info.id`; the broker stamps last_seen."""
        await self._heartbeat(info.id, encode_worker(info))

    @abc.abstractmethod
    async def _heartbeat(self, worker_id: str, entry: bytes) -> None: ...

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None: ...

    async def list_workers(self, expiry: float) -> list[WorkerInfo]:
        """Entries heard from within `expiry` seconds (broker clock), oldest
        heartbeat first, with `last_seen`; older ones are pruned."""
        return decode_workers(await self._live_workers(expiry))

    @abc.abstractmethod
    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        """Prune silent entries; (id, JSON entry, last seen unix seconds) of the rest."""


class Administration(abc.ABC):
    """Operator actions: cancel a job; act on dead letters."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a job, atomically: queued or scheduled, it is removed and
        final (CANCELLED: it never runs); running, its worker is told
        (REQUESTED: it stops it and settles it cancelled); finished, the
        final state is answered (ALREADY_*); UNKNOWN for no such job."""

    @abc.abstractmethod
    async def get_record(self, job_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def delete_dead(self, job_id: str) -> bool: ...

    @abc.abstractmethod
    async def _replay(
        self, job_id: str, record: bytes, priority: str, name: str, unique: Unique | None
    ) -> bool | str:
        """Make the dead job ready; a unique job (`unique`: its digest and
        unique_for in ms) takes its key again in the same step. False: not
        a dead letter; a str: the id of the job that holds the key (nothing done)."""

    async def replay_dead(self, job_id: str) -> bool:
        """Make a dead job ready again with a fresh retry budget.

        Raises InvalidRecord when its record cannot be replayed (delete it
        instead), UniqueConflict when a newer job holds its unique key."""
        raw = await self.get_record(job_id)
        rec = decode_record(raw, expected_id=job_id)
        fields = rec.fields
        # A replay starts at attempt 0 again: a slot reserved then is long gone.
        for key in ("error", "traceback", "dead_reason", "scheduled_for", RESERVED):
            fields.pop(key, None)
        unique = record_unique(fields)
        record = rec.updated(attempts=0, status="pending")
        done = await self._replay(job_id, record, lane(rec.route, rec.priority), rec.name, unique)
        if isinstance(done, str):
            raise UniqueConflict(job_id, done)
        return done


class RateLimits(abc.ABC):
    """Rate limits (docs/control.md, "Rate limits"): the worker's admission
    (worker/rates.py) reserves start slots in a bucket and parks the jobs
    whose slot is later, without charging an attempt."""

    @abc.abstractmethod
    async def rate_admit(self, bucket: str, interval: float, count: int) -> list[float]:
        """Reserve `count` start slots of `bucket` (rates.bucket_id), one every
        `interval` seconds (broker clock): seconds from now until each; 0 is now."""

    @abc.abstractmethod
    async def rate_park(
        self, delivery: Delivery, record: bytes, delay: float, throttled: str | None
    ) -> bool:
        """End the lease and schedule the job `delay` seconds from now with
        `record` (attempts unchanged). `throttled`: its type while it waits for
        a rate-limit slot (counted as throttled until then); None for a
        RetryLater. False: the lease is not ours; CancelRequested: cancelled."""

    @abc.abstractmethod
    async def rate_wake(self, job_ids: Sequence[str]) -> int:
        """Move the due scheduled jobs where `job_ids` live, now (the worker's
        wake-up at a slot it reserved): how many moved."""

    @abc.abstractmethod
    async def declare_rate_limits(self, limits: Mapping[str, str | None]) -> None:
        """A worker's job types and their limits ("50/s"; None: unlimited), for the views."""

    @abc.abstractmethod
    async def rate_usage(self) -> list[RateUsage]:
        """Every declared limit with its use now, by type name."""


class ForeignRouting(abc.ABC):
    """Optional: route job records other clients wrote without Bananas'
    routing (the SDKs' plain priority lists). Only brokers that can receive
    such records have it; the worker starts its routing loops only then."""

    @abc.abstractmethod
    async def register_types(self, names: Sequence[str]) -> None:
        """Record that a worker can run these job types (for routing foreign jobs)."""

    @abc.abstractmethod
    async def pump_foreign(self, priority: str, timeout: float, route: str | None = None) -> int:
        """Route jobs other clients pushed without routing: the Redis plain
        list of `priority` (route None), or the Go scheduler's list of due
        jobs of `route` (bananas:route:{route}:queue:{priority})."""


class Workflows(abc.ABC):
    """Workflows (docs/workflows.md): a plan written at once, read back for
    the handles, the worker (a step's inputs) and the views. `workflow` and
    `count_workflows` are the views' read API (the `bananas workflow` tree,
    the dashboard graph, the metrics). The settling of members is on the
    worker path (a Delivery whose `workflow` is set settles through the
    member variant of complete / bury / cancelled)."""

    async def prepare_workflows(self) -> None:
        """Whatever `new_workflow_ids` needs to know first (a cluster: its
        partition count); nothing by default."""
        return None

    def new_workflow_ids(self, count: int) -> tuple[str, list[str]]:
        """A workflow id and `count` member ids. A broker that partitions
        its keyspace picks them so that every id is in one partition."""
        first, *rest = new_job_ids(count + 1)
        return first, rest

    @abc.abstractmethod
    async def enqueue_workflow(self, plan: WorkflowPlan) -> None:
        """Write the whole plan: its steps without dependencies are made
        ready, the others wait in the workflow's store until the transition
        that settles their last dependency releases them."""

    def new_member_id(self, workflow_id: str) -> str:
        """An id for a step added to a workflow (in its partition)."""
        return new_job_ids(1)[0]

    @abc.abstractmethod
    async def add_step(self, workflow_id: str, step: PlannedStep) -> str:
        """Add a step to a running workflow after `step.deps` (steps of it):
        'added' (it waits), 'released' (its dependencies were all final),
        or why not: the workflow's final state, 'building', 'unknown',
        'no_step' (a dependency is not a step of it)."""

    @abc.abstractmethod
    async def workflow(self, workflow_id: str) -> WorkflowView | None:
        """The workflow with every step (the views' read API); None if
        unknown or expired."""

    @abc.abstractmethod
    async def workflow_head(self, workflow_id: str) -> WorkflowHead | None:
        """The workflow's own fields, without reading its steps."""

    async def count_workflows(self, state: str) -> int:
        """Workflows in one of WORKFLOW_STATES (final ones: since they were
        created in this keyspace; the counters outlive the expired workflows)."""
        if state not in WORKFLOW_STATES:
            raise BananasError(
                f"unknown workflow state {state!r} (allowed: {', '.join(WORKFLOW_STATES)})"
            )
        return await self._count_workflows(state)

    @abc.abstractmethod
    async def _count_workflows(self, state: str) -> int: ...

    @abc.abstractmethod
    async def list_workflows(self, limit: int = 50) -> list[str]:
        """Ids of running workflows, oldest first (at most `limit`)."""

    @abc.abstractmethod
    async def cancel_workflow(self, workflow_id: str) -> str | None:
        """Cancel what has not finished: waiting and queued steps become
        cancelled at once, running ones are told to stop (they settle
        cancelled). Returns the workflow's state after (CANCELLED, or the
        final state it already had); None if unknown."""

    @abc.abstractmethod
    async def workflow_values(self, workflow_id: str, ids: list[str]) -> dict[str, bytes]:
        """The stored results (JSON text) of these steps that have one."""

    @abc.abstractmethod
    async def _step_info(self, workflow_id: str, step_id: str) -> bytes | None: ...

    async def workflow_inputs(self, workflow_id: str, step_id: str) -> tuple[str, object] | None:
        """What a step receives: (its keyword, the assembled results of
        the steps it depends on), decoded; None when it takes nothing."""
        raw = await self._step_info(workflow_id, step_id)
        if raw is None:
            return None
        info = orjson.loads(raw)
        kind, shape = info.get("in") or "", info.get("shape")
        if not kind:
            return None
        found = await self.workflow_values(workflow_id, shape_ids(shape))
        values = {k: orjson.loads(v) for k, v in found.items()}
        return kind, assemble(shape, values)

    async def workflow_output(self, head: WorkflowHead) -> object:
        """A completed workflow's result, assembled from its output shape."""
        found = await self.workflow_values(head.id, shape_ids(head.output))
        return assemble(head.output, {k: orjson.loads(v) for k, v in found.items()})


@dataclass(frozen=True, slots=True)
class SlotJob:
    """A leased job of a type with a concurrency limit (docs/control.md):
    its bucket (concurrency.bucket_of), the type's limit, and its ready
    list's member ("lane:type", where a waiter is resumed)."""

    delivery: Delivery
    bucket: str
    limit: int
    member: str


@dataclass(frozen=True, slots=True)
class SlotUsage:
    """One bucket in use: its limit, the slots held, the jobs waiting."""

    bucket: str
    limit: int
    running: int
    waiting: int


class ConcurrencyLimits(abc.ABC):
    """Optional: concurrency limits (docs/control.md). Only a worker with a
    type that has a limit calls these; unlimited jobs never do.

    A bucket's slots are holders scored by a deadline (broker clock, a lease
    long, extended by the holder's heartbeat): a holder whose worker died
    expires, and the next acquire, release or heartbeat in the bucket
    prunes it. A job that finds no free slot is parked (its lease taken
    back, no attempt charged, with a safety re-check time) and joins the
    bucket's waiters; a freed slot goes to the oldest waiter, which is
    resumed at the head of its ready list."""

    async def admit(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[bool]:
        """Take a slot for each job (True: run it), or park it as a waiter (False)."""
        return await self._admit(jobs, lease_seconds) if jobs else []

    @abc.abstractmethod
    async def _admit(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[bool]: ...

    async def release_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> None:
        """Drop these holders (their jobs settled or were put back); freed
        slots go to the oldest waiters, which are resumed."""
        if jobs:
            await self._release_slots(jobs, lease_seconds)

    @abc.abstractmethod
    async def _release_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> None: ...

    async def extend_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[str]:
        """The holder heartbeat: a lease from now; returns the ids no longer holding."""
        return await self._extend_slots(jobs, lease_seconds) if jobs else []

    @abc.abstractmethod
    async def _extend_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[str]: ...

    @abc.abstractmethod
    async def slot_usage(self, limit: int = 200) -> list[SlotUsage]:
        """The buckets in use (at most `limit`), busiest first."""


def concurrency_limits(broker: object) -> ConcurrencyLimits | None:
    """The broker's concurrency limits, if it has them."""
    return broker if isinstance(broker, ConcurrencyLimits) else None
