"""A chord over a group of 10,000 members fires its callback exactly once
with the 10,000 results in order, and what a member costs against a plain
job, measured in the same session with the same worker (docs/workflows.md
records the numbers): wall time to drain, and Redis commands and script
calls per job (INFO commandstats: every command a worker and the client
sent, so round trips can only be fewer)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import Bananas, chord
from bananas.config import Settings

pytestmark = pytest.mark.timeout(600)

N = 10_000


def _stats(target: Backend) -> dict[str, int]:
    if target.name != "redis":
        return {}
    client = redis.Redis.from_url(target.url)
    try:
        info: dict[str, Any] = client.info("commandstats")
        total = int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()
    scripts = sum(
        int(v["calls"]) for k, v in info.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )
    return {"commands": total, "scripts": scripts}


def _per_job(before: dict[str, int], after: dict[str, int]) -> str:
    if not before:
        return ""
    return ", ".join(f"{k}/job {(after[k] - before[k]) / N:.2f}" for k in before)


@both_brokers
def test_a_10k_chord_fires_once_in_order_and_costs_per_member(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.workflows:app", "--concurrency", "50", LOG_LEVEL="warning")

    # Plain jobs first: the baseline, same worker, same session.
    before = _stats(target)
    started = time.perf_counter()
    handles = app.enqueue_many([app.spec("ident", i=i) for i in range(N)])
    wait_for(
        lambda: handles[-1].info() is not None and target.view.count("queued") == 0,
        120,
        interval=0.05,
        message="10,000 plain jobs drained",
    )
    wait_for(lambda: target.view.count("running") == 0, 60, interval=0.05)
    plain_s = time.perf_counter() - started
    plain = _per_job(before, _stats(target))

    before = _stats(target)
    started = time.perf_counter()
    flow = chord([app.spec("ident", i=i) for i in range(N)], app.spec("check_order", n=N))
    handle = flow.enqueue()
    enqueued_s = time.perf_counter() - started
    # Polled like the plain jobs above (a waiting handle re-reads on every
    # commit of a SQLite file: it would slow what it measures).
    wait_for(lambda: app.broker.sync.get_result(handle.id) is not None, 300, interval=0.05)
    assert handle.result(timeout=10) == {"n": N, "ordered": True}
    chord_s = time.perf_counter() - started
    member = _per_job(before, _stats(target))

    assert int(target.sink.hget("test:callback", "order") or 0) == 1
    view = handle.status()
    assert view is not None and view.state == "completed" and view.done == N + 1
    print(
        f"\n{target.name}: {N} plain jobs {plain_s:.2f}s ({plain}); "
        f"chord of {N} + callback {chord_s:.2f}s (enqueue {enqueued_s:.2f}s; {member}); "
        f"per member +{(chord_s - plain_s) / N * 1e6:.0f} us"
    )
