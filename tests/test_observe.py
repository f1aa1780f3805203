"""Health, readiness, drain status, metrics, metrics log and the worker registry,
checked against real worker processes and a real redis-server."""

from __future__ import annotations

import itertools
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis
from apps.core import app
from prometheus_client.parser import text_string_to_metric_families
from support import RedisServer, WorkerFactory, free_port, wait_for

from bananas.config import Settings


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            body = resp.read().decode()
            return resp.status, (json.loads(body) if path != "/metrics" else body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, None


def enqueue(name: str, payloads: list[dict[str, object]]) -> list[str]:
    app.configure(Settings.load())
    return [h.id for h in app.enqueue_many([(name, p) for p in payloads])]


def test_ready_quickly_then_draining_then_exit(workers: WorkerFactory, r: redis.Redis) -> None:
    port = free_port()
    t0 = time.monotonic()
    w = workers.start(
        "apps.core:app",
        "--concurrency",
        "10",
        wait=False,
        HEALTH_PORT=str(port),
        SHUTDOWN_TIMEOUT="20s",
    )
    wait_for(lambda: get(port, "/readyz")[0] == 200, 10, message="/readyz 200")
    ready_after = time.monotonic() - t0
    assert ready_after < 10, ready_after
    assert get(port, "/livez")[0] == 200
    enqueue("sleepy", [{"k": str(i), "seconds": 0.3 + 0.15 * i} for i in range(10)])
    wait_for(lambda: r.hlen("test:started") == 10, 10, message="10 running")
    w.signal(signal.SIGTERM)
    _, body = wait_for(
        lambda: (s := get(port, "/readyz"))[0] == 503 and s, 2, message="/readyz 503 on drain"
    )
    assert "worker is draining" in body["problems"]
    seen = []
    while w.proc.poll() is None:
        code, drain = get(port, "/drainz")
        if code == 200 and drain["draining"]:
            seen.append(drain["in_flight"])
        time.sleep(0.05)
    assert w.wait(5) == 0
    assert seen and max(seen) > min(seen), seen  # in-flight counted down
    assert seen == sorted(seen, reverse=True)
    assert r.hlen("test:runs") == 10


def test_livez_fails_while_loop_blocked(workers: WorkerFactory) -> None:
    port = free_port()
    workers.start("apps.core:app", HEALTH_PORT=str(port), LIVENESS_LOOP_STALL="1s")
    assert get(port, "/livez")[0] == 200
    enqueue("block_loop", [{"seconds": 4.0}])
    _, body = wait_for(lambda: (s := get(port, "/livez"))[0] == 503 and s, 5, message="/livez 503")
    assert "event loop blocked" in body["problems"][0]
    wait_for(lambda: get(port, "/livez")[0] == 200, 10, message="/livez recovers")


def test_readyz_follows_redis_outage(tmp_path: Path, workers: WorkerFactory) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        port = free_port()
        workers.redis_url = server.url
        w = workers.start(
            "apps.core:app", HEALTH_PORT=str(port), REDIS_URL=server.url, TEST_REDIS_URL=server.url
        )
        wait_for(lambda: get(port, "/readyz")[0] == 200, 10, message="ready")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        before = Bananas_enqueue(server.url, 50)
        wait_for(lambda: client.hlen("test:runs") == 50, 20, message="first 50 ran")
        server.stop()
        wait_for(lambda: get(port, "/readyz")[0] == 503, 15, message="/readyz 503")
        assert get(port, "/livez")[0] == 200  # alive, just not ready
        server.start()
        wait_for(lambda: get(port, "/readyz")[0] == 200, 20, message="/readyz 200 again")
        after = Bananas_enqueue(server.url, 50, offset=50)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        wait_for(lambda: client.hlen("test:runs") == 100, 30, message="all 100 ran")
        assert set(client.hvals("test:runs")) == {"1"}
        assert len(before) == len(after) == 50
        assert w.proc.poll() is None
        client.close()
    finally:
        server.stop()


def Bananas_enqueue(url: str, n: int, offset: int = 0) -> list[str]:
    app.configure(Settings.load(env={"REDIS_URL": url}))
    return [h.id for h in app.enqueue_many([("record", {"k": str(offset + i)}) for i in range(n)])]


def test_metrics_after_1000_jobs(workers: WorkerFactory, r: redis.Redis) -> None:
    port = free_port()
    w = workers.start(
        "apps.core:app",
        "--concurrency",
        "20",
        HEALTH_PORT=str(port),
        METRICS_LOG_INTERVAL="500ms",
        MAX_RETRIES="0",
    )
    enqueue("add", [{"a": i, "b": 1} for i in range(990)])
    enqueue("broken_until_fixed", [{"k": str(i)} for i in range(10)])
    enqueue("add", [{"a": 1, "b": 1} for _ in range(5)])
    wait_for(
        lambda: r.zcard("bananas:dead") == 10 and r.zcard("bananas:completed") == 995,
        30,
        message="1,005 jobs done",
    )

    def scrape() -> dict[str, Any]:
        code, text = get(port, "/metrics")
        assert code == 200
        out: dict[str, Any] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name + json.dumps(sample.labels, sort_keys=True)
                out[key] = sample.value
        return out

    depth_key = 'bananas_queue_depth{"job_type": "add", "priority": "normal", "route": "default"}'

    def settled() -> dict[str, Any] | None:
        m = scrape()  # queue gauges refresh every 2 s, counters at once
        done = m['bananas_jobs_total{"status": "completed"}'] == 995
        return m if done and depth_key in m else None

    samples = wait_for(settled, 10, interval=0.2, message="counters and queue gauges")
    # broken_until_fixed has max_retries=2: 3 failed attempts each, then the DLQ.
    assert samples['bananas_jobs_total{"status": "failed"}'] == 30
    assert samples['bananas_jobs_total{"status": "retried"}'] == 20
    assert samples['bananas_jobs_total{"status": "dead_lettered"}'] == 10
    assert samples['bananas_job_duration_seconds_count{"job_type": "add"}'] == 995
    assert samples["bananas_in_flight_jobs{}"] == 0
    assert 0 <= samples["bananas_worker_utilization{}"] <= 1
    assert "bananas_error_rate{}" in samples
    assert samples["bananas_drain_duration_seconds{}"] == 0
    assert samples[depth_key] == 0
    assert 'bananas_oldest_job_age_seconds{"priority": "high"}' in samples
    assert samples["bananas_dead_letter_jobs{}"] == 10
    for name in (
        "bananas_scheduler_moved_total{}",
        "bananas_scheduler_firings_total{}",
        "bananas_leases_recovered_total{}",
    ):
        assert name in samples

    # The JSON metrics line carries the fields operators alert on, with matching counts.
    def last_metrics() -> dict[str, Any] | None:
        lines = [e for e in w.events("metrics") if e["jobs_completed"] == 995]
        return lines[-1] if lines else None

    line = wait_for(last_metrics, 10, message="metrics line with the final counts")
    assert line["jobs_failed"] == 30 and line["jobs_processed"] == 1025
    for field in (
        "avg_duration_ms",
        "worker_utilization",
        "error_rate",
        "uptime",
        "in_flight",
        "queue_depth",
    ):
        assert field in line
    stamps = [e["ts"] for e in w.events("metrics")]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps and all(0.3 < g < 1.5 for g in gaps), gaps


def test_status_lists_the_fleet(workers: WorkerFactory, r: redis.Redis) -> None:
    default = workers.start("apps.core:app", "--group-id", "general")
    workers.start(
        "apps.core:app", "--mode", "specialized", "--priorities", "high", "--group-id", "urgent"
    )
    workers.start(
        "apps.core:app", "--mode", "job-specialized", "--job-types", "cpu", "--group-id", "cpu"
    )
    scheduler = workers.start_scheduler()

    def fleet() -> dict[str, Any] | None:
        out = workers.cli("status", "--json")
        data = json.loads(out.stdout)
        return data if len(data["workers"]) == 3 and len(data["schedulers"]) == 1 else None

    data = wait_for(fleet, 10, interval=0.2, message="3 workers + 1 scheduler")
    modes = {(e["mode"], e["group"]) for e in data["workers"]}
    assert modes == {("default", "general"), ("specialized", "urgent"), ("job-specialized", "cpu")}
    assert data["schedulers"][0]["mode"] == "scheduler-only"
    text = workers.cli("status").stdout
    assert "WORKERS (3)" in text and "SCHEDULERS (1)" in text and "urgent" in text
    default.signal(signal.SIGKILL)
    wait_for(
        lambda: len(json.loads(workers.cli("status", "--json").stdout)["workers"]) == 2,
        15,
        interval=0.3,
        message="killed worker expires from the registry",
    )
    assert scheduler.proc.poll() is None
