"""Every Redis key name Bananas uses, built in one place.

The first block is the wire format shared with the Bananas client SDKs
(docs/wire-format.md); the rest is Bananas' own bookkeeping under the same prefix.
Per-job keys are prefix + id; the Lua scripts receive those prefixes in ARGV
because a job id is only known inside the script (the same convention as
asynq and BullMQ). On Redis Cluster every key of a partition is built from
`Keys("<prefix>:{<tag>}")` (brokers/redis/partitions.py), so a key a script
builds from such a prefix and an id it popped hashes to the slot of the
KEYS it was given: Redis refuses a script touching another slot, and the
conformance suite runs every script on a cluster. The SDK key names carry
no hash tag, which is why a cluster does not read SDK-format lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from .routes import DEFAULT_ROUTE
from .vocabulary import PRIORITIES, PRIORITY_NAMES

PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}


def lane(route: str, priority: str) -> str:
    """The first part of a ready queue (QueueRef[0]): the priority on the
    default route, "route:priority" on another. Default keeps the names it
    had before routes (ready:{priority}:{type}); others are
    ready:{route}:{priority}:{type}. Route names are never priority names
    (routes.check_route), so the first segment says which."""
    return priority if route == DEFAULT_ROUTE else f"{route}:{priority}"


def split_lane(value: str) -> tuple[str, str]:
    """(route, priority) of a lane."""
    route, sep, priority = value.partition(":")
    return (route, priority) if sep else (DEFAULT_ROUTE, value)


def parse_member(text: str) -> tuple[str, str]:
    """A ready list's member ("lane:type", its key without the ready prefix)
    as a QueueRef (lane, type). Job types may hold ':'; routes and
    priorities never do."""
    head, _, rest = text.partition(":")
    if head in PRIORITY_NAMES:
        return (head, rest)
    priority, _, name = rest.partition(":")
    return (f"{head}:{priority}", name)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "bananas"

    # -- wire format (docs/wire-format.md) -------------------------------------------
    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def job_prefix(self) -> str:
        return f"{self.prefix}:job:"

    def plain_queue(self, priority: str) -> str:
        """The SDK ready list for a priority (LPUSH, oldest at the right)."""
        return f"{self.prefix}:queue:{priority}"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:queue:scheduled"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"

    @property
    def result_prefix(self) -> str:
        return f"{self.prefix}:result:"

    def notify_channel(self, job_id: str) -> str:
        return f"{self.prefix}:result:notify:{job_id}"

    @property
    def notify_prefix(self) -> str:
        return f"{self.prefix}:result:notify:"

    # -- Bananas' own keys --------------------------------------------------
    @property
    def ready_prefix(self) -> str:
        return f"{self.prefix}:ready:"

    def ready(self, priority: str, name: str) -> str:
        """Routed ready list of one (lane, job type): `priority` is a lane
        (see `lane`), so a named route's lists are ready:{route}:{priority}:{type}."""
        return f"{self.prefix}:ready:{priority}:{name}"

    @property
    def marker_prefix(self) -> str:
        return f"{self.prefix}:marker:"

    def marker(self, priority: str, name: str) -> str:
        """Wake-up marker (a one-member sorted set) idle workers BZPOPMIN on."""
        return f"{self.prefix}:marker:{priority}:{name}"

    @property
    def nonempty(self) -> str:
        """Hash "priority:name" -> 1 for every routed ready list that may hold
        jobs, and "#" -> its version: a worker dequeues only from those
        (lua/_index.lua)."""
        return f"{self.prefix}:nonempty"

    @property
    def queues(self) -> str:
        """Set of "priority:name" members: every routed list ever used."""
        return f"{self.prefix}:queues"

    def routing(self, priority: str) -> str:
        """Ids taken off a plain SDK list and not yet routed (crash-safe hand-over)."""
        return f"{self.prefix}:routing:{priority}"

    def route_queue(self, route: str, priority: str) -> str:
        """The Go scheduler's list of due routed SDK jobs (wire format)."""
        return f"{self.prefix}:route:{route}:queue:{priority}"

    def route_routing(self, route: str, priority: str) -> str:
        """Ids taken off a `route_queue` and not yet routed (crash-safe hand-over)."""
        return f"{self.prefix}:routing:{route}:{priority}"

    @property
    def active(self) -> str:
        """Sorted set of leased job ids scored by lease deadline (unix ms)."""
        return f"{self.prefix}:active"

    @property
    def leases(self) -> str:
        """Hash id -> "<token> <ready list>": who holds the lease, where it goes back."""
        return f"{self.prefix}:leases"

    def dequeued(self, worker: str) -> str:
        """A worker's last dequeue (token prefix and ids), kept for a lease:
        a call repeated after a lost reply is answered again (dequeue.lua)."""
        return f"{self.prefix}:dequeued:{worker}"

    @property
    def stalls(self) -> str:
        """Hash id -> number of times the job's lease expired (its worker died)."""
        return f"{self.prefix}:stalls"

    @property
    def dead(self) -> str:
        """Sorted set of dead-lettered ids scored by time of death (unix ms)."""
        return f"{self.prefix}:dead"

    @property
    def dead_info(self) -> str:
        """Hash id -> JSON {reason, error, traceback, failed_at, priority, name}."""
        return f"{self.prefix}:dead:info"

    @property
    def completed(self) -> str:
        """Sorted set of recently completed ids scored by finish time (unix ms), capped."""
        return f"{self.prefix}:completed"

    def throughput(self, minute: int) -> str:
        """Hash {completed, failed} of attempts finished in one unix minute (expires)."""
        return f"{self.prefix}:throughput:{minute}"

    @property
    def throughput_prefix(self) -> str:
        """The scripts add the minute of the server's clock (TIME) themselves."""
        return f"{self.prefix}:throughput:"

    @property
    def workers(self) -> str:
        """Hash worker id -> JSON registry entry."""
        return f"{self.prefix}:workers"

    @property
    def workers_seen(self) -> str:
        """Sorted set worker id -> last heartbeat (unix ms)."""
        return f"{self.prefix}:workers:seen"

    @property
    def keyspace(self) -> str:
        """String "<marker> <created unix ms>": written by the first heartbeat of
        a keyspace; a different one later means the keyspace was lost."""
        return f"{self.prefix}:keyspace"

    @property
    def types(self) -> str:
        """Hash job type -> unix ms a worker last registered a handler for it."""
        return f"{self.prefix}:types"

    @property
    def fence(self) -> str:
        """String written before every WAIT (REDIS_MIN_REPLICAS, replicas.py), so
        the WAIT covers every earlier write even on a fresh connection."""
        return f"{self.prefix}:fence"

    @property
    def cancels(self) -> str:
        """Hash id -> unix ms of the cancel: running jobs someone cancelled,
        which their worker stops (lua/cancel.lua, worker/cancels.py). Absent
        while nobody cancels: the worker's check is one EXISTS."""
        return f"{self.prefix}:cancels"

    @property
    def cancelled(self) -> str:
        """Sorted set of cancelled ids scored by time of the cancel (unix ms)."""
        return f"{self.prefix}:cancelled"

    def unique(self, digest: str) -> str:
        """String: the id of the job holding a unique key (docs/control.md),
        expiring after the job type's `unique_for` (server clock). `digest`
        is the hashed key (specs.unique_digest)."""
        return f"{self.prefix}:unique:{digest}"

    @property
    def unique_prefix(self) -> str:
        return f"{self.prefix}:unique:"

    @property
    def unique_held(self) -> str:
        """Hash id -> digest of every live job that holds a unique key: each
        final transition checks it exists (one EXISTS per call) before
        looking up its ids, so jobs without a key pay nothing (lua/_unique.lua)."""
        return f"{self.prefix}:unique-held"

    @property
    def slot_buckets(self) -> str:
        """Hash bucket -> limit: the concurrency buckets in use (docs/control.md),
        each dropped once it has no holder and no waiter."""
        return f"{self.prefix}:slots"

    def slot_holders(self, bucket: str) -> str:
        """Sorted set id -> holder deadline (unix ms, server clock): the jobs
        holding one of the bucket's slots."""
        return f"{self.prefix}:slots:{bucket}:holders"

    def slot_waiters(self, bucket: str) -> str:
        """Sorted set id -> join order (unix ms, strictly increasing): parked jobs, oldest first."""
        return f"{self.prefix}:slots:{bucket}:waiters"

    def slot_where(self, bucket: str) -> str:
        """Hash id -> ready list member of a waiter: where it is resumed."""
        return f"{self.prefix}:slots:{bucket}:where"

    def progress(self, job_id: str) -> str:
        """Hash {fraction, message, attempt, updated_at} a running job last
        reported (progress.lua); expires like its result."""
        return f"{self.prefix}:progress:{job_id}"

    def rate(self, bucket: str) -> str:
        """String: the theoretical arrival time (unix ms) of a rate-limit
        bucket (rates.bucket_id; lua/rate_admit.lua), expiring once passed."""
        return f"{self.prefix}:rate:{bucket}"

    def throttled(self, name: str) -> str:
        """Sorted set id -> unix ms of its reserved slot: jobs of a type
        waiting for a rate-limit slot (lua/rate_park.lua), read by the views."""
        return f"{self.prefix}:throttled:{name}"

    @property
    def rate_limits(self) -> str:
        """Hash job type -> its rate limit ("50/s"), as the workers declare it."""
        return f"{self.prefix}:rate-limits"

    # -- workflows (docs/workflows.md) -----------------------------------------
    @property
    def wf_prefix(self) -> str:
        """A workflow's keys are wf:{id} (hash: state, policy, total, done,
        output, ...) and wf:{id}:<part> (WF_PARTS), all in its partition."""
        return f"{self.prefix}:wf:"

    def wf(self, workflow_id: str, part: str = "") -> str:
        return f"{self.prefix}:wf:{workflow_id}" + (f":{part}" if part else "")

    @property
    def workflows(self) -> str:
        """Sorted set of running workflow ids scored by creation (unix ms)."""
        return f"{self.prefix}:workflows"

    @property
    def workflow_counts(self) -> str:
        """Hash state -> number of workflows that reached it (running: now)."""
        return f"{self.prefix}:workflows:count"

    def wf_context(self, ttl: str, publish: str, iso: str) -> str:
        """What a member's final transition needs to reach its workflow
        (lua/_wf.lua), packed in one ARGV: tab-separated, in this order."""
        return "\t".join(
            (
                self.wf_prefix,
                self.job_prefix,
                self.result_prefix,
                self.ready_prefix,
                self.marker_prefix,
                self.queues,
                self.nonempty,
                self.active,
                self.scheduled,
                self.cancels,
                self.cancelled,
                self.workflows,
                self.workflow_counts,
                self.notify_prefix,
                publish,
                ttl,
                iso,
            )
        )


WF_PARTS = ("steps", "info", "wait", "rec", "queue", "next", "res")
"""wf:{id}:steps  hash step -> StepState
wf:{id}:info   hash step -> static JSON {name, deps, in, shape}
wf:{id}:wait   hash step -> dependencies not final yet (waiting steps)
wf:{id}:rec    hash step -> the job record of a waiting step
wf:{id}:queue  hash step -> its queue member "lane:type"
wf:{id}:next   hash step -> comma-separated ids of the steps depending on it
wf:{id}:res    hash step -> result JSON (or the error under on_failure=continue)"""
