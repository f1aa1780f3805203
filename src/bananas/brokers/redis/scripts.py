"""One typed wrapper per Lua state transition (lua/*.lua; loaded by
script_loader.py). Each script's header lists its KEYS and ARGV by name; the wrapper of the same
name takes exactly those names, in that order (a repeated group, `per
queue: ready, marker`, is one parameter: a sequence of flat tuples), and
tests/test_broker_redis.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .script_loader import Call as Call
from .script_loader import LuaScript as LuaScript
from .script_loader import load as load
from .script_loader import read_source as read_source


def _flat(groups: Sequence[Sequence[Any]]) -> list[Any]:
    return [value for group in groups for value in group]


def _call(name: str, keys: list[str], args: list[Any]) -> Call:
    return Call(load(name), keys, args)


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
    ttl: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The KEYS / ARGV every job of a merged complete call shares."""
    return (active, leases, stalls, completed), (ttl, throughput_prefix, throughput_keep, publish)


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
    job: Sequence[tuple[Any, ...]],
    ttl: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
) -> Call:
    """job items: the parameters of `complete_job`, in order."""
    keys, args = complete_shared(
        active=active,
        leases=leases,
        stalls=stalls,
        completed=completed,
        ttl=ttl,
        throughput_prefix=throughput_prefix,
        throughput_keep=throughput_keep,
        publish=publish,
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
    id: str,
    token: str,
    record: bytes,
    delay: float,
    throughput_prefix: str,
    throughput_keep: int,
) -> Call:
    return _call(
        "retry",
        [active, leases, record_key, scheduled],
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
) -> Call:
    return _call(
        "bury",
        [active, leases, stalls, record_key, result_key, dead, dead_info],
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


# -- maintenance -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Prefixes:
    """The per-id key prefixes routing scripts build keys from (asynq and
    BullMQ pass them the same way: an id is only known inside the script)."""

    job_prefix: str
    result_prefix: str
    notify_prefix: str
    ready_prefix: str
    marker_prefix: str

    def args(self) -> list[str]:
        return [
            self.job_prefix,
            self.result_prefix,
            self.notify_prefix,
            self.ready_prefix,
            self.marker_prefix,
        ]


def recover(
    *,
    active: str,
    leases: str,
    stalls: str,
    dead: str,
    dead_info: str,
    queues: str,
    completed: str,
    index: str,
    max_stalls: int,
    limit: int,
    now_iso: str,
    ttl: str,
    prefixes: Prefixes,
    keep_completed: int,
    ttl_ms: int,
) -> Call:
    return _call(
        "recover",
        [active, leases, stalls, dead, dead_info, queues, completed, index],
        [max_stalls, limit, now_iso, ttl, *prefixes.args(), keep_completed, ttl_ms],
    )


def fail_stalled(*, dead: str, record_key: str, id: str, died_ms: int, record: bytes) -> Call:
    return _call("fail_stalled", [dead, record_key], [id, died_ms, record])


def move_due(
    *,
    scheduled: str,
    queues: str,
    dead: str,
    dead_info: str,
    index: str,
    limit: int,
    now_iso: str,
    ttl: str,
    prefixes: Prefixes,
) -> Call:
    return _call(
        "move_due",
        [scheduled, queues, dead, dead_info, index],
        [limit, now_iso, ttl, *prefixes.args()],
    )


def route_plain(
    *,
    routing: str,
    plain: str,
    types: str,
    queues: str,
    dead: str,
    dead_info: str,
    keyspace: str,
    index: str,
    priority: str,
    limit: int,
    now_iso: str,
    ttl: str,
    prefixes: Prefixes,
    grace_ms: int,
    route: str = "",
) -> Call:
    return _call(
        "route_plain",
        [routing, plain, types, queues, dead, dead_info, keyspace, index],
        [priority, limit, now_iso, ttl, *prefixes.args(), grace_ms, route],
    )


# -- dead letters and the registry ------------------------------------------------
def replay(
    *,
    dead: str,
    dead_info: str,
    stalls: str,
    record_key: str,
    result_key: str,
    ready: str,
    marker: str,
    queues: str,
    index: str,
    id: str,
    record: bytes,
    member: str,
) -> Call:
    return _call(
        "replay",
        [dead, dead_info, stalls, record_key, result_key, ready, marker, queues, index],
        [id, record, member],
    )


def delete_dead(
    *,
    dead: str,
    dead_info: str,
    stalls: str,
    record_key: str,
    result_key: str,
    id: str,
) -> Call:
    return _call("delete_dead", [dead, dead_info, stalls, record_key, result_key], [id])


def heartbeat(
    *,
    workers: str,
    seen: str,
    types: str,
    keyspace: str,
    id: str,
    entry: bytes,
    marker: str,
    knew: str,
    job_type: Sequence[tuple[str]],
) -> Call:
    """job_type items: (name,)."""
    return _call(
        "heartbeat",
        [workers, seen, types, keyspace],
        [id, entry, marker, knew, *_flat(job_type)],
    )


def prune_workers(*, workers: str, seen: str, expiry_ms: int) -> Call:
    return _call("prune_workers", [workers, seen], [expiry_ms])


def claim(*, claim: str, owner: str, ms: int) -> Call:
    return _call("claim", [claim], [owner, ms])


SCRIPT_NAMES = (
    "enqueue",
    "dequeue",
    "extend",
    "complete",
    "retry",
    "bury",
    "requeue",
    "progress",
    "recover",
    "fail_stalled",
    "move_due",
    "route_plain",
    "replay",
    "delete_dead",
    "heartbeat",
    "prune_workers",
    "claim",
)
