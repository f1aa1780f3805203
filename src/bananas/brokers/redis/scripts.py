"""One typed wrapper per Lua transition of a job's own path: enqueue,
dequeue, lease extension, settling, put-back and progress (lua/*.lua, loaded
by script_loader.py). The scripts that run around the jobs (recovery, due
moves, routing, dead letters, the registry) are wrapped in upkeep_scripts.py.

Each script's header lists its KEYS and ARGV by name; the wrapper of the same
name takes exactly those names, in that order (a repeated group, `per
queue: ready, marker`, is one parameter: a sequence of flat tuples), and
tests/test_broker_redis.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .script_loader import Call
from .script_loader import call as _call
from .script_loader import flat as _flat


# -- client ----------------------------------------------------------------
def enqueue(
    *,
    queues: str,
    scheduled: str,
    index: str,
    queue: Sequence[tuple[str, str, str]],
    job: Sequence[tuple[str, str, bytes, str, str, int]],
    nq: int,
) -> Call:
    """queue items: (ready, marker, member); job items: (record_key, id,
    record, delay, at, queue_number); nq = len(queue)."""
    keys = [queues, scheduled, index]
    args: list[Any] = [nq]
    for ready, marker, member in queue:
        keys += (ready, marker)
        args.append(member)
    for record_key, *rest in job:
        keys.append(record_key)
        args += rest
    return _call("enqueue", keys, args)


def enqueue_unique(
    *,
    queues: str,
    scheduled: str,
    index: str,
    held: str,
    queue: Sequence[tuple[str, str, str]],
    job: Sequence[tuple[str, str, str, bytes, str, str, int, str, int]],
    nq: int,
) -> Call:
    """queue items: (ready, marker, member); job items: (record_key, lock, id,
    record, delay, at, queue_number, digest, ttl_ms); nq = len(queue)."""
    keys = [queues, scheduled, index, held]
    args: list[Any] = [nq]
    for ready, marker, member in queue:
        keys += (ready, marker)
        args.append(member)
    for record_key, lock, *rest in job:
        keys += (record_key, lock)
        args += rest
    return _call("enqueue_unique", keys, args)


# -- worker ----------------------------------------------------------------
def dequeue(
    *,
    active: str,
    leases: str,
    last: str,
    index: str,
    queue: Sequence[tuple[str, str]],
    count: int,
    lease_ms: int,
    token_prefix: str,
    job_prefix: str,
    start: int,
    version: str,
    index_limit: int,
    ready_prefix: str,
) -> Call:
    """queue items: (ready, marker); sent as every ready list, then every marker."""
    readies, markers = zip(*queue, strict=True) if queue else ((), ())
    return _call(
        "dequeue",
        [active, leases, last, index, *readies, *markers],
        [count, lease_ms, token_prefix, job_prefix, start, version, index_limit, ready_prefix],
    )


def extend(
    *, active: str, leases: str, lease_ms: int, lease: Sequence[tuple[str, str, str]]
) -> Call:
    """lease items: (id, token, started: "1" or "0")."""
    return _call("extend", [active, leases], [lease_ms, *_flat(lease)])


def complete_shared(
    *,
    active: str,
    leases: str,
    stalls: str,
    completed: str,
    held: str,
    ttl: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
    unique_prefix: str,
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The KEYS / ARGV every job of a merged complete call shares."""
    return (active, leases, stalls, completed, held), (
        ttl,
        throughput_prefix,
        throughput_keep,
        publish,
        unique_prefix,
    )


def complete_job(
    record_key: str,
    result_key: str,
    id: str,
    token: str,
    record: bytes,
    completed_at: str,
    duration_ms: str,
    duration_us: str,
    result: bytes,
    notify: str,
) -> tuple[tuple[str, str], tuple[Any, ...]]:
    """One job's KEYS / ARGV of a merged complete call."""
    return (record_key, result_key), (
        id,
        token,
        record,
        completed_at,
        duration_ms,
        duration_us,
        result,
        notify,
    )


def complete(
    *,
    active: str,
    leases: str,
    stalls: str,
    completed: str,
    held: str,
    job: Sequence[tuple[Any, ...]],
    ttl: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
    unique_prefix: str,
) -> Call:
    """job items: the parameters of `complete_job`, in order."""
    keys, args = complete_shared(
        active=active,
        leases=leases,
        stalls=stalls,
        completed=completed,
        held=held,
        ttl=ttl,
        throughput_prefix=throughput_prefix,
        throughput_keep=throughput_keep,
        publish=publish,
        unique_prefix=unique_prefix,
    )
    all_keys, all_args = list(keys), list(args)
    for item in job:
        item_keys, item_args = complete_job(*item)
        all_keys += item_keys
        all_args += item_args
    return _call("complete", all_keys, all_args)


def retry(
    *,
    active: str,
    leases: str,
    record_key: str,
    scheduled: str,
    cancels: str,
    id: str,
    token: str,
    record: bytes,
    delay: float,
    throughput_prefix: str,
    throughput_keep: int,
) -> Call:
    return _call(
        "retry",
        [active, leases, record_key, scheduled, cancels],
        [id, token, record, delay, throughput_prefix, throughput_keep],
    )


def bury(
    *,
    active: str,
    leases: str,
    stalls: str,
    record_key: str,
    result_key: str,
    dead: str,
    dead_info: str,
    held: str,
    id: str,
    token: str,
    record: bytes,
    info: bytes,
    ttl: str,
    completed_at: str,
    duration_ms: str,
    duration_us: str,
    error: str,
    notify: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
    unique_prefix: str,
    wf: str,
    wf_context: str,
) -> Call:
    return _call(
        "bury",
        [active, leases, stalls, record_key, result_key, dead, dead_info, held],
        [
            id,
            token,
            record,
            info,
            ttl,
            completed_at,
            duration_ms,
            duration_us,
            error,
            notify,
            throughput_prefix,
            throughput_keep,
            publish,
            unique_prefix,
            wf,
            wf_context,
        ],
    )


def requeue(
    *,
    active: str,
    leases: str,
    index: str,
    ready_prefix: str,
    marker_prefix: str,
    lease: Sequence[tuple[str, str]],
) -> Call:
    """lease items: (id, token)."""
    return _call("requeue", [active, leases, index], [ready_prefix, marker_prefix, *_flat(lease)])


def progress(
    *,
    leases: str,
    progress: str,
    id: str,
    token: str,
    fraction: str,
    message: str,
    attempt: int,
    ttl: int,
) -> Call:
    return _call("progress", [leases, progress], [id, token, fraction, message, attempt, ttl])


# -- cancel (docs/control.md) -------------------------------------------------
def cancel(
    *,
    record_key: str,
    result_key: str,
    ready: str,
    scheduled: str,
    active: str,
    dead: str,
    stalls: str,
    cancels: str,
    cancelled: str,
    unique_held: str,
    id: str,
    seen: bytes,
    record: bytes,
    ttl: str,
    cancelled_at: str,
    notify: str,
    publish: str,
    unique_prefix: str,
    wf: str,
    wf_context: str,
) -> Call:
    return _call(
        "cancel",
        [
            *(record_key, result_key, ready, scheduled, active, dead, stalls),
            *(cancels, cancelled, unique_held),
        ],
        [id, seen, record, ttl, cancelled_at, notify, publish, unique_prefix, wf, wf_context],
    )


def cancelled(
    *,
    active: str,
    leases: str,
    stalls: str,
    record_key: str,
    result_key: str,
    cancels: str,
    cancelled: str,
    unique_held: str,
    id: str,
    token: str,
    record: bytes,
    ttl: str,
    completed_at: str,
    duration_ms: str,
    duration_us: str,
    error: str,
    notify: str,
    publish: str,
    unique_prefix: str,
    wf: str,
    wf_context: str,
) -> Call:
    return _call(
        "cancelled",
        [active, leases, stalls, record_key, result_key, cancels, cancelled, unique_held],
        [
            *(id, token, record, ttl, completed_at, duration_ms, duration_us, error, notify),
            *(publish, unique_prefix, wf, wf_context),
        ],
    )


def cancel_check(
    *, cancels: str, job_prefix: str, result_prefix: str, job: Sequence[tuple[str]]
) -> Call:
    """job items: (id,), the leased jobs to look up."""
    return _call("cancel_check", [cancels], [job_prefix, result_prefix, *_flat(job)])


# -- rate limits (docs/control.md) -------------------------------------------
def rate_admit(*, bucket: str, interval_ms: float, count: int) -> Call:
    return _call("rate_admit", [bucket], [interval_ms, count])


def rate_park(
    *,
    active: str,
    leases: str,
    record_key: str,
    scheduled: str,
    cancels: str,
    throttled: str,
    id: str,
    token: str,
    record: bytes,
    delay: float,
    waits: int,
) -> Call:
    return _call(
        "rate_park",
        [active, leases, record_key, scheduled, cancels, throttled],
        [id, token, record, delay, waits],
    )
