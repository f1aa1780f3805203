"""Rate limits, end to end (docs/control.md, "Rate limits"): real
redis-server, real worker processes. The broker-level admission, park and
reservation are in tests/conformance/test_rate.py, on every broker."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime
from typing import Any

import pytest
import redis
from apps.rates import app
from support import Backend, WorkerFactory, both_brokers, free_port, wait_for

from bananas import BananasError
from bananas.config import Settings
from bananas.worker.rates import EARLY

LIMIT = 50.0  # the test app's rate_limit="50/s"
WORKER_ARGS = ("--concurrency", "10")
MAX_LATE = 0.5  # seconds a parked job may start after its slot (measured: p99 ~70 ms)


def _starts(target: Backend, name: str) -> list[float]:
    return sorted(float(x.split()[0]) for x in target.sink.lrange(name))


def _lateness(target: Backend, name: str) -> list[float]:
    """Seconds from each parked job's slot (its record's scheduled_for) to its start."""
    out = []
    for entry in target.sink.lrange(name):
        at, job_id = entry.split()
        due = target.view.record(job_id).get("scheduled_for")
        if due:
            out.append(float(at) - datetime.fromisoformat(due).timestamp())
    return sorted(out)


def _max_in_window(starts: list[float], window: float = 1.0) -> int:
    """The most starts in any `window` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _start_workers(workers: WorkerFactory, n: int = 3) -> None:
    procs = [workers.start("apps.rates:app", *WORKER_ARGS, wait=False) for _ in range(n)]
    for proc in procs:
        proc.wait_started()


def _check_spacing(target: Backend, name: str) -> None:
    """Every parked job starts at or after its slot and soon after it; so in
    any 1 s window at most LIMIT + 1 slots, plus those late ones bunching
    behind (the spread of the lateness over the interval)."""
    late = _lateness(target, name)
    starts = _starts(target, name)
    spread = late[-1] - late[0]
    most = _max_in_window(starts)
    print(
        f"rate: {name}: start after its slot: min {late[0] * 1000:.1f} ms, median "
        f"{late[len(late) // 2] * 1000:.1f} ms, p99 {late[int(len(late) * 0.99)] * 1000:.1f} ms, "
        f"max {late[-1] * 1000:.1f} ms ({len(late)} parked); most starts in 1 s: {most}"
    )
    assert late[0] > -0.005, "a job started before its slot"
    assert late[-1] < MAX_LATE, f"a job started {late[-1]:.3f}s after its slot"
    assert most <= LIMIT + 1 + (spread + EARLY) * LIMIT, (most, spread)


def _attempts(target: Backend, ids: list[str]) -> set[Any]:
    return {target.view.record(i)["attempts"] for i in ids}


@both_brokers
def test_600_jobs_at_50_per_s_over_3_workers_take_12_s_with_no_attempt_charged(
    target: Backend, workers: WorkerFactory
) -> None:
    app.configure(Settings.load())
    _start_workers(workers)
    sent = time.monotonic()
    handles = app.enqueue_many([app.spec("limited", n=i) for i in range(600)])
    ids = [h.id for h in handles]
    wait_for(lambda: target.view.count("completed", "limited") == 600, 30, 0.05, "600 done")
    took = time.monotonic() - sent
    starts = _starts(target, "test:rate:limited")
    assert len(starts) == 600  # each ran once
    span = starts[-1] - starts[0]
    print(f"rate: {target.name}: 600 at 50/s: done in {took:.2f}s, starts span {span:.2f}s")
    # 600 starts 20 ms apart: the last one 11.98 s after the first.
    assert 10.8 <= took <= 13.2, f"all finished in {took:.2f}s"
    assert 10.8 <= span <= 13.2, f"first to last start {span:.2f}s"
    _check_spacing(target, "test:rate:limited")
    assert _attempts(target, ids) == {1}  # the one that ran; none for throttling
    assert not workers.repeat_causes()
    assert all(not w.events("job.dead_lettered") for w in workers.started)


@both_brokers
def test_the_limit_holds_per_rate_key(target: Backend, workers: WorkerFactory) -> None:
    app.configure(Settings.load())
    _start_workers(workers)
    sent = time.monotonic()
    specs = [app.spec("keyed", n=i, key=k, _rate_key=k) for i in range(300) for k in "ab"]
    ids = [h.id for h in app.enqueue_many(specs)]
    wait_for(lambda: target.view.count("completed", "keyed") == 600, 30, 0.05, "600 done")
    took = time.monotonic() - sent
    assert 5.4 <= took <= 6.6, f"2 keys x 300 at 50/s each finished in {took:.2f}s"
    for key in "ab":
        starts = _starts(target, f"test:rate:keyed:{key}")
        assert len(starts) == 300
        span = starts[-1] - starts[0]
        print(f"rate: key {key}: 300 at 50/s in {span:.2f}s (all done in {took:.2f}s)")
        assert 5.4 <= span <= 6.6, f"key {key}: {span:.2f}s"
        _check_spacing(target, f"test:rate:keyed:{key}")
    assert _attempts(target, ids) == {1}


@both_brokers
def test_a_throttled_type_does_not_hold_up_another(target: Backend, workers: WorkerFactory) -> None:
    """300 unlimited jobs drain at their own speed beside 600 throttled ones
    (measured against the same 300 alone, same workers)."""
    app.configure(Settings.load())
    _start_workers(workers)

    def drain_free(base: int) -> float:
        sent = time.monotonic()
        app.enqueue_many([app.spec("free", n=i) for i in range(300)])
        wait_for(
            lambda: target.view.count("completed", "free") == base + 300, 30, 0.01, "free done"
        )
        return time.monotonic() - sent

    alone = drain_free(0)
    app.enqueue_many([app.spec("limited", n=i) for i in range(600)])
    wait_for(lambda: target.sink.llen("test:rate:limited") >= 5, 10, message="throttling began")
    beside = drain_free(300)
    print(f"rate: {target.name}: 300 free alone {alone:.2f}s, beside 600 throttled {beside:.2f}s")
    throttled_left = 600 - target.sink.llen("test:rate:limited")
    assert throttled_left > 400  # the limited type was still throttled throughout
    assert beside <= max(2 * alone, alone + 0.5), f"alone {alone:.2f}s, beside {beside:.2f}s"


@both_brokers
def test_retry_later_runs_again_after_the_delay_without_charging_an_attempt(
    target: Backend, workers: WorkerFactory
) -> None:
    app.configure(Settings.load())
    workers.start("apps.rates:app")
    handle = app.enqueue("snoozy", n=1)
    handle.result(timeout=20)  # raises unless it completed
    at = _starts(target, "test:rate:snoozy:at")
    assert len(at) == 2 and at[1] - at[0] >= 0.3, at
    record = target.view.record(handle.id)
    assert record["attempts"] == 1  # max_retries=0, yet it ran twice: the snooze was free
    assert record["snoozes"] == 1
    [event] = workers.started[0].events("job.retry_later")
    assert event["attempts"] == 0 and event["retry_in_s"] == 0.3


def test_retry_later_past_max_snoozes_is_charged(target: Backend, workers: WorkerFactory) -> None:
    """A job that snoozes for ever is not kept for ever: the 101st RetryLater
    is an ordinary failed attempt (max_retries=0: dead-lettered)."""
    app.configure(Settings.load())
    workers.start("apps.rates:app")
    handle = app.enqueue("always_snoozes", n=1)
    wait_for(lambda: target.view.state(handle.id) == "dead", 60, message="dead-lettered")
    assert target.sink.hget("test:rate:always", "1") == "101"


def test_bad_limits_and_keys_are_refused_with_what_is_allowed() -> None:
    from bananas import Bananas

    other = Bananas()
    for bad in ("50", "50/d", "0/s", "-1/s", "fast", 50):
        with pytest.raises(BananasError, match=r'allowed: "<count>/s"'):
            other.job(rate_limit=bad)(lambda: None)  # type: ignore[arg-type]

    @other.job
    def plain() -> None: ...

    with pytest.raises(BananasError, match="has no rate limit"):
        other.spec("plain", _rate_key="t-1")
    with pytest.raises(BananasError, match="has no rate limit"):
        plain.options(rate_key="t-1").spec()
    with pytest.raises(BananasError, match="non-empty string"):
        app.spec("limited", n=1, _rate_key="")
    assert app.spec("limited", n=1, _rate_key="t").rate_key == "t"


@both_brokers
def test_status_and_metrics_show_throttled_work_with_its_limit(
    target: Backend, workers: WorkerFactory
) -> None:
    app.configure(Settings.load())
    port = free_port()
    workers.start("apps.rates:app", *WORKER_ARGS, HEALTH_PORT=str(port))
    app.enqueue_many([app.spec("limited", n=i) for i in range(300)])  # 6 s at 50/s

    def status() -> dict[str, Any]:
        out = workers.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    data = wait_for(lambda: (d := status())["throttled"] > 100 and d, 10, message="throttled")
    limits = {e["job_type"]: e for e in data["rate_limits"]}
    assert sorted(limits) == ["keyed", "limited"]  # every limited type the worker runs
    entry = limits["limited"]
    assert entry["limit"] == "50/s" and limits["keyed"]["throttled"] == 0
    assert entry["throttled"] == data["throttled"] and entry["booked_s"] > 1
    # Throttled work is not ordinary scheduled work; a job whose slot passed a
    # moment ago is due (not throttled) until it is moved, a few ms.
    assert data["scheduled"] <= 2, data["scheduled"]
    text = workers.cli("status").stdout
    assert re.search(r"^throttled  \d+$", text, re.M) and "RATE LIMIT" in text
    assert re.search(r"^50/s +limited +\d+ +[\d.]+s \(at its limit\)$", text, re.M), text

    def metric(name: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            found = re.search(rf'^{name}{{job_type="limited"}} (\S+)$', resp.read().decode(), re.M)
        return float(found.group(1)) if found else None

    wait_for(lambda: (metric("bananas_rate_limit_throttled_jobs") or 0) > 0, 10)
    assert metric("bananas_rate_limit_per_second") == 50.0
    assert (metric("bananas_rate_limit_booked_seconds") or 0) > 0
    wait_for(lambda: target.view.count("completed", "limited") == 300, 20, message="all ran")
    assert wait_for(lambda: status()["throttled"] == 0, 5, message="none throttled")


def _commands(url: str) -> tuple[int, int]:
    """(script calls, all commands, those run inside scripts included) so far."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    scripts = sum(
        int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )
    return scripts, sum(int(v["calls"]) for v in stats.values())


def test_redis_commands_per_throttled_job_are_bounded(
    target: Backend, workers: WorkerFactory
) -> None:
    """No polling: a throttled job costs a constant number of calls whatever
    it waits (measured against the same number of unlimited jobs)."""
    app.configure(Settings.load())
    _start_workers(workers)
    per_job = {}
    for name in ("free", "limited"):
        scripts0, all0 = _commands(target.url)
        app.enqueue_many([app.spec(name, n=i) for i in range(300)])

        def done(n: str = name) -> bool:
            return target.view.count("completed", n) == 300

        wait_for(done, 30, 0.5, name)
        scripts1, all1 = _commands(target.url)
        per_job[name] = ((scripts1 - scripts0) / 300, (all1 - all0) / 300)
    (fs, fa), (ls, la) = per_job["free"], per_job["limited"]
    print(
        f"rate: per job, unlimited: {fs:.1f} script calls, {fa:.1f} commands; "
        f"throttled at 50/s (6 s): {ls:.1f} script calls, {la:.1f} commands"
    )
    # Measured 5.0: its park, its wake-up, its own dequeue and ack (a job let
    # through alone is not batched with others), its share of the admission
    # and of the schedulers' ticks over the 6 s. A constant, not one per poll.
    assert ls <= 6, per_job
