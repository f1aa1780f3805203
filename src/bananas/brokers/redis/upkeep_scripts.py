"""Typed wrappers of the Lua transitions that run around the jobs rather than
for one: lease recovery, due moves and the routing of foreign records
(redis_upkeep.py), dead letters and the worker registry (redis_inspect.py).
A job's own transitions are wrapped in scripts.py; the header rule there
(each wrapper takes its script's KEYS and ARGV by name, in order) holds here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .script_loader import Call
from .script_loader import call as _call
from .script_loader import flat as _flat


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
    held: str,
    max_stalls: int,
    limit: int,
    now_iso: str,
    ttl: str,
    prefixes: Prefixes,
    keep_completed: int,
    ttl_ms: int,
    unique_prefix: str,
    wf_context: str,
) -> Call:
    return _call(
        "recover",
        [active, leases, stalls, dead, dead_info, queues, completed, index, held],
        [
            max_stalls,
            limit,
            now_iso,
            ttl,
            *prefixes.args(),
            keep_completed,
            ttl_ms,
            unique_prefix,
            wf_context,
        ],
    )


def fail_stalled(
    *,
    dead: str,
    record_key: str,
    id: str,
    died_ms: int,
    record: bytes,
    wf: str,
    wf_context: str,
    reason: str,
) -> Call:
    return _call("fail_stalled", [dead, record_key], [id, died_ms, record, wf, wf_context, reason])


def move_due(
    *,
    scheduled: str,
    queues: str,
    dead: str,
    dead_info: str,
    index: str,
    held: str,
    limit: int,
    now_iso: str,
    ttl: str,
    prefixes: Prefixes,
    unique_prefix: str,
) -> Call:
    return _call(
        "move_due",
        [scheduled, queues, dead, dead_info, index, held],
        [limit, now_iso, ttl, *prefixes.args(), unique_prefix],
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
    lock: str,
    held: str,
    member: str,
    digest: str,
    ttl_ms: int,
) -> Call:
    return _call(
        "replay",
        [dead, dead_info, stalls, record_key, result_key, ready, marker, queues, index, lock, held],
        [id, record, member, digest, ttl_ms],
    )


def delete_dead(
    *,
    dead: str,
    dead_info: str,
    stalls: str,
    record_key: str,
    result_key: str,
    held: str,
    id: str,
    unique_prefix: str,
    wf: str,
    wf_context: str,
) -> Call:
    return _call(
        "delete_dead",
        [dead, dead_info, stalls, record_key, result_key, held],
        [id, unique_prefix, wf, wf_context],
    )


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
