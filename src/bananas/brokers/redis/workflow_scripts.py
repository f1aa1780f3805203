"""Typed wrappers of the workflow scripts (docs/workflows.md): one per
lua/wf_*.lua, checked against its header by tests/test_broker_redis.py."""

from __future__ import annotations

from collections.abc import Sequence

from .script_loader import Call
from .script_loader import call as _call
from .script_loader import flat as _flat


def wf_complete(
    *,
    active: str,
    leases: str,
    stalls: str,
    completed: str,
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
    ttl: str,
    throughput_prefix: str,
    throughput_keep: int,
    publish: str,
    wf: str,
    wf_context: str,
) -> Call:
    return _call(
        "wf_complete",
        [active, leases, stalls, completed, record_key, result_key],
        [
            *(id, token, record, completed_at, duration_ms, duration_us, result, notify),
            *(ttl, throughput_prefix, throughput_keep, publish, wf, wf_context),
        ],
    )


def wf_enqueue(
    *,
    wf: str,
    steps: str,
    info: str,
    wait: str,
    rec: str,
    queue: str,
    next: str,
    res: str,
    workflows: str,
    counts: str,
    queues: str,
    index: str,
    id: str,
    policy: str,
    total: int,
    output: bytes,
    start: int,
    ttl: str,
    job_prefix: str,
    ready_prefix: str,
    marker_prefix: str,
    step: Sequence[tuple[str, bytes, str, int, str, bytes]],
) -> Call:
    """step items: (step, record, member, deps, next, info)."""
    return _call(
        "wf_enqueue",
        [wf, steps, info, wait, rec, queue, next, res, workflows, counts, queues, index],
        [
            *(id, policy, total, output, start, ttl, job_prefix, ready_prefix, marker_prefix),
            *_flat(step),
        ],
    )


def wf_cancel(*, wf: str, id: str, wf_context: str) -> Call:
    return _call("wf_cancel", [wf], [id, wf_context])


def wf_add(
    *,
    wf: str,
    steps: str,
    info: str,
    wait: str,
    rec: str,
    queue: str,
    next: str,
    queues: str,
    index: str,
    id: str,
    step: str,
    record: bytes,
    member: str,
    info_json: bytes,
    job_prefix: str,
    ready_prefix: str,
    marker_prefix: str,
    dep: Sequence[tuple[str]],
) -> Call:
    """dep items: (dep,), the steps it waits for."""
    return _call(
        "wf_add",
        [wf, steps, info, wait, rec, queue, next, queues, index],
        [id, step, record, member, info_json, job_prefix, ready_prefix, marker_prefix, *_flat(dep)],
    )
