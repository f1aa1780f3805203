"""REDIS_MIN_REPLICAS cost and loss window, on a loopback primary + replica.

    .venv/bin/python -m bench.min_replicas [--runs 5] [--jobs 20000] [--calls 2000]

In one session, runs interleaved (N=0, N=1, N=0, ...), Redis flushed between:
- enqueue: single-call `fn.enqueue()` round trips from one thread, p50/p99;
- drain: a real `bananas worker` (--concurrency 10,50; LOG_LEVEL=warning) on a
  pre-filled queue, jobs/s between the 5 % and 95 % completions;
- loss: the primary SIGKILLed under a 4-thread enqueue load and the replica
  promoted (REPLICAOF NO ONE): acknowledged enqueues missing on it, plain and
  with the replica cut off first (tests/replication.py, the same scenario as
  tests/failover/test_min_replicas.py).
Prints a Markdown table of medians (and every run's figures) to paste into
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bananas import Bananas

ROOT = Path(__file__).resolve().parent.parent
app = Bananas()  # the worker's app: `--app bench.min_replicas:app`


@app.job()
async def noop() -> None:
    return None


WAITS: dict[tuple[int, int], list[float]] = {}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _configure(url: str, n: int) -> None:
    from bananas.config import Settings

    env = {"REDIS_URL": url, "REDIS_MIN_REPLICAS": str(n)}
    app.configure(Settings.load(env=env))


def enqueue_latency(pair: Any, n: int, calls: int) -> tuple[float, float]:
    _configure(pair.url, n)
    for _ in range(50):  # connect, check permissions, warm the held connection
        noop.enqueue()
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        noop.enqueue()
        took.append(time.perf_counter() - began)
    app.configure(app.settings)
    return _percentile(took, 0.5) * 1e6, _percentile(took, 0.99) * 1e6


def drain_rate(pair: Any, n: int, jobs: int, logs: Path, concurrency: int = 10) -> float:
    """Jobs/s between the 5 % and 95 % completions; WAITS[concurrency] gets
    the primary's WAIT calls per job of the whole drain."""
    import redis

    _configure(pair.url, 0)
    for start in range(0, jobs, 1000):
        app.enqueue_many([noop.spec() for _ in range(min(1000, jobs - start))])
    app.configure(app.settings)
    pair.wait_linked()
    pair.reset_stats()
    client = redis.Redis(port=pair.primary.port)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "BANANAS_"))},
        "REDIS_URL": pair.url,
        "REDIS_MIN_REPLICAS": str(n),
        "WORKER_CONCURRENCY": str(concurrency),
        "HEALTH_PORT": "0",
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    with open(logs / f"worker-n{n}-{time.time_ns()}.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", "worker", "--app", "bench.min_replicas:app"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            low, high = int(jobs * 0.05), int(jobs * 0.95)
            marks: dict[int, float] = {}
            deadline = time.monotonic() + 300
            while high not in marks:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"the drain did not finish (see {log.name})")
                done = int(client.zcard("bananas:completed"))
                for mark in (low, high):
                    if done >= mark and mark not in marks:
                        marks[mark] = time.monotonic()
                time.sleep(0.005)
            WAITS.setdefault((n, concurrency), []).append(pair.wait_calls() / high)
            return (high - low) / (marks[high] - marks[low])
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--loss-runs", type=int, default=5)
    parser.add_argument("--concurrency", default="10,50", help="drain concurrencies, a comma list")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import redis
    from apps.core import app as test_app
    from replication import Replicated, enqueue_through_failover

    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    figures: dict[int, dict[str, list[float]]] = {0: {}, 1: {}}
    print("load at start:", os.getloadavg())
    pair = Replicated(work / "redis").start()
    primary = redis.Redis(port=pair.primary.port)
    try:
        for run in range(args.runs):
            for n in (0, 1):
                primary.flushall()
                p50, p99 = enqueue_latency(pair, n, args.calls)
                got = {"p50": p50, "p99": p99}
                for c in concurrencies:
                    primary.flushall()
                    got[f"drain c={c}"] = drain_rate(pair, n, args.jobs, work, c)
                for name, value in got.items():
                    figures[n].setdefault(name, []).append(value)
                print(f"run {run + 1} N={n}:", {k: round(v) for k, v in got.items()})
    finally:
        primary.close()
        pair.stop()
    print("load after the cost runs:", os.getloadavg())
    losses: dict[tuple[int, bool], list[Any]] = {}
    for run in range(args.loss_runs):
        for cut in (False, True):
            for n in (0, 1):
                other = Replicated(work / f"loss-{run}-{n}-{cut}").start()
                try:
                    seen = enqueue_through_failover(other, test_app, n, cut=cut, before=2000)
                finally:
                    other.stop()
                losses.setdefault((n, cut), []).append(seen)
                print(f"loss run {run + 1} N={n} cut={cut}: {seen}")
    print("\n| figure | N=0 | N=1 | N=1 ÷ N=0 (median of per-run ratios) |")
    print("|---|---|---|---|")
    for name in figures[0]:
        zero, one = figures[0][name], figures[1][name]
        ratio = statistics.median(b / a for a, b in zip(zero, one, strict=True))
        unit = " µs" if name.startswith("p") else " jobs/s"
        cells = [
            f"{statistics.median(v):,.0f}{unit} ({min(v):,.0f}-{max(v):,.0f})" for v in (zero, one)
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")
    for (n, c), per_job in sorted(WAITS.items()):
        print(f"WAIT calls per job, N={n} c={c}: {statistics.median(per_job):.3f}")
    print("load at end:", os.getloadavg())
    print("\n| REDIS_MIN_REPLICAS | replica | acknowledged | lost per run |")
    print("|---|---|---|---|")
    for (n, cut), seen in sorted(losses.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        acked = statistics.median(s.acknowledged for s in seen)
        lost = ", ".join(str(s.lost) for s in seen)
        print(f"| {n} | {'cut off' if cut else 'in sync'} | {acked:.0f} | {lost} |")


if __name__ == "__main__":
    main()
