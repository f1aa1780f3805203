"""The workloads of issue 8. Each takes one library and returns its figures.

Completion is read from the probe keys the jobs' worker processes publish
(`bench/apps/probe.py`): no job does I/O for the harness. Every wait is bounded;
a library that does not finish in time gets its partial rate and a note.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from .adapters import Adapter, WorkerSpec
from .procs import BenchError, Client, Worker, base_env, run_client

Figures = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    enqueue: int = 20_000
    drain: int = 20_000
    drain_timeout: float = 60.0
    latency: int = 2_000
    latency_rate: float = 200.0
    io: int = 2_000
    io_concurrency: int = 50
    prio_backlog: int = 20_000
    prio_rate: float = 100.0
    memory: int = 100_000
    memory_timeout: float = 120.0
    concurrency: int = 10

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            enqueue=2_000,
            drain=2_000,
            drain_timeout=20.0,
            latency=200,
            io=500,
            prio_backlog=2_000,
            memory=5_000,
            memory_timeout=40.0,
        )


@dataclass
class Context:
    redis_url: str
    sizes: Sizes
    logs: Path
    run: int = 0
    live: list[Worker] | None = None
    src: Path | None = None  # snapshot of src/ to measure (None: the installed package)

    def r(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return base_env(self.redis_url, extra, self.src)

    def start(
        self,
        adapter: Adapter,
        specs: list[WorkerSpec],
        tag: str,
        extra: dict[str, str] | None = None,
    ) -> list[Worker]:
        workers = []
        for i, spec in enumerate(specs):
            log = self.logs / f"{adapter.name}-{tag}-run{self.run}-{i}.log"
            worker = Worker(spec, self.env(extra), log)
            workers.append(worker)
            if self.live is not None:
                self.live.append(worker)
        return workers

    def stop(self, workers: list[Worker]) -> None:
        for worker in workers:
            worker.stop()
            if self.live is not None and worker in self.live:
                self.live.remove(worker)


# -- probe reader ------------------------------------------------------------
def read_counts(r: redis.Redis) -> dict[str, tuple[int, float, float]]:
    """kind -> (jobs counted, first unix time, last unix time) over all worker processes."""
    agg: dict[str, tuple[int, float, float]] = {}
    for key, value in r.hgetall("bench:done").items():
        kind = key.decode().split(":", 1)[1]
        count_s, first_s, last_s = value.decode().split()
        count, first, last = int(count_s), float(first_s), float(last_s)
        if kind in agg:
            c, f, la = agg[kind]
            agg[kind] = (c + count, min(f, first), max(la, last))
        else:
            agg[kind] = (count, first, last)
    return agg


def wait_for(
    r: redis.Redis,
    kind: str,
    target: int,
    timeout: float,
    workers: list[Worker],
    on_tick: Callable[[int], None] | None = None,
) -> tuple[int, float, float, bool]:
    """Wait until `target` jobs of `kind` ran; returns (count, first, last, complete)."""
    deadline = time.monotonic() + timeout
    count, first, last = 0, 0.0, 0.0
    while True:
        count, first, last = read_counts(r).get(kind, (0, 0.0, 0.0))
        if on_tick is not None:
            on_tick(count)
        if count >= target:
            return count, first, last, True
        if workers and not any(w.alive() for w in workers):
            raise BenchError(f"worker exited early: {workers[0].tail()}")
        if time.monotonic() > deadline:
            return count, first, last, False
        time.sleep(0.01)


def latencies_ms(r: redis.Redis, kind: str) -> list[float]:
    return sorted(float(x) * 1000 for x in r.lrange(f"bench:lat:{kind}", 0, -1))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(q * (len(values) - 1))))
    return values[k]


def prefill(
    ctx: Context,
    a: Adapter,
    task: str,
    n: int,
    queue: str = "default",
    extra: dict[str, str] | None = None,
) -> None:
    run_client(
        a,
        ctx.env(extra),
        ["enqueue", "--task", task, "--n", str(n), "--mode", "fastest", "--queue", queue],
        timeout=max(60.0, n / 200),
    )


def warm_up(ctx: Context, a: Adapter, workers: list[Worker], n: int = 20) -> None:
    """Run `n` no-op jobs so the workers are connected and idle; not measured."""
    r = ctx.r()
    before = read_counts(r).get("noop", (0, 0.0, 0.0))[0]
    run_client(a, ctx.env(), ["enqueue", "--task", "noop", "--n", str(n)], timeout=60)
    _, _, _, ok = wait_for(r, "noop", before + n, 60, workers)
    if not ok:
        raise BenchError(f"workers did not run warm-up jobs within 60s: {workers[0].tail()}")
    time.sleep(0.5)


# -- 1. enqueue ----------------------------------------------------------------
def enqueue(ctx: Context, a: Adapter) -> Figures:
    n = ctx.sizes.enqueue
    out: Figures = {}
    for mode in ("single", "batch"):
        if mode == "batch" and not a.has_batch:
            continue
        ctx.r().flushall()
        res = run_client(
            a,
            ctx.env(),
            ["enqueue", "--task", "noop", "--n", str(n), "--mode", mode, "--warmup"],
            timeout=max(120.0, n / 100),
        )
        out[f"{mode}_jobs_s"] = n / res["seconds"]
    return out


# -- 2. drain ----------------------------------------------------------------------
def drain(
    ctx: Context,
    a: Adapter,
    processes: int = 1,
    extra: dict[str, str] | None = None,
    tag: str = "drain",
) -> Figures:
    n = ctx.sizes.drain
    r = ctx.r()
    r.flushall()
    prefill(ctx, a, "noop", n, extra=extra)
    spawned = time.time()
    workers = ctx.start(
        a, [a.worker(ctx.sizes.concurrency) for _ in range(processes)], f"{tag}{processes}", extra
    )
    try:
        count, first, last, ok = wait_for(r, "noop", n, ctx.sizes.drain_timeout, workers)
    finally:
        ctx.stop(workers)
    if count == 0:
        raise BenchError(f"no job ran within {ctx.sizes.drain_timeout:.0f}s: {workers[0].tail()}")
    out: Figures = {
        "jobs_s": count / (last - spawned),
        "steady_jobs_s": count / max(last - first, 1e-6),
        "startup_s": first - spawned,
    }
    if not ok:
        out["note"] = f"timed out: {count}/{n} jobs ran in {ctx.sizes.drain_timeout:.0f}s"
    return out


def drain2(ctx: Context, a: Adapter) -> Figures:
    return drain(ctx, a, processes=2)


def sqlite_drain(ctx: Context, a: Adapter) -> Figures:
    db = ctx.logs.parent / "sqlite" / f"bench-run{ctx.run}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    return drain(ctx, a, 1, {"BANANAS_BROKER_URL": f"sqlite:///{db}"}, tag="sqlite")


# -- 3. latency ------------------------------------------------------------------
def latency(ctx: Context, a: Adapter) -> Figures:
    s = ctx.sizes
    r = ctx.r()
    r.flushall()
    workers = ctx.start(a, [a.worker(s.concurrency)], "latency")
    try:
        warm_up(ctx, a, workers)
        r.delete("bench:lat:stamp")
        sent = run_client(
            a,
            ctx.env(),
            ["rate", "--task", "stamp", "--n", str(s.latency), "--rate", str(s.latency_rate)],
            timeout=s.latency / s.latency_rate + 60,
        )
        _, _, _, ok = wait_for(r, "stamp", sent["sent"], 30, workers)
        time.sleep(0.1)  # let the probe publish the last latencies
        lat = latencies_ms(r, "stamp")
    finally:
        ctx.stop(workers)
    out: Figures = {
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1],
        "client_max_late_ms": sent["max_late_s"] * 1000,
    }
    if not ok or len(lat) < sent["sent"]:
        out["note"] = f"only {len(lat)}/{sent['sent']} jobs ran within 30s"
    return out


# -- 4. io -------------------------------------------------------------------------
def io(ctx: Context, a: Adapter) -> Figures:
    if not a.concurrent:
        raise BenchError("n/a: one job at a time per process (no concurrency setting)")
    s = ctx.sizes
    r = ctx.r()
    r.flushall()
    prefill(ctx, a, "sleep", s.io)
    workers = ctx.start(a, [a.worker(s.io_concurrency)], "io")
    try:
        count, first, last, ok = wait_for(r, "sleep", s.io, 60, workers)
    finally:
        ctx.stop(workers)
    if count == 0:
        raise BenchError("no job ran within 60s")
    # `first` is when the first job *finished*: add back its 50 ms sleep.
    rate = count / (last - first + 0.05)
    out: Figures = {"jobs_s": rate, "pct_ideal": 100 * rate / (s.io_concurrency / 0.05)}
    if not ok:
        out["note"] = f"timed out: {count}/{s.io} jobs in 60s"
    return out


# -- 5. priority isolation -----------------------------------------------------
def priority(ctx: Context, a: Adapter, mode: str) -> Figures:
    s = ctx.sizes
    specs = a.priority_workers(mode, s.concurrency)
    if specs is None:
        raise BenchError(f"n/a: no {mode} priority mode")
    extra = {"BENCH_HUEY_PRIORITY": "1"}
    r = ctx.r()
    r.flushall()
    prefill(ctx, a, "noop", s.prio_backlog, queue="low", extra=extra)
    sender = Client(a, ctx.env(extra), [
        "rate", "--task", "stamp", "--queue", "high", "--n", "100000",
        "--rate", str(s.prio_rate), "--go-key", "bench:go", "--stop-key", "bench:stop",
    ])  # fmt: skip
    workers: list[Worker] = []
    try:
        time.sleep(1.0)  # the sender imports its library and connects, then waits for go
        workers = ctx.start(a, specs, f"prio-{mode}", extra)
        count, _, _, ok = wait_for(r, "noop", 1, 60, workers)
        if not ok:
            raise BenchError(f"the backlog did not start draining in 60s: {workers[0].tail()}")
        r.set("bench:go", 1)
        count, first, last, ok = wait_for(r, "noop", s.prio_backlog, s.drain_timeout, workers)
        r.set("bench:stop", 1)
        sent = sender.result(30)
        wait_for(r, "stamp", sent["sent"], 20, workers)
        time.sleep(0.1)
        lat = latencies_ms(r, "stamp")
    finally:
        sender.kill()
        ctx.stop(workers)
    if not lat:
        raise BenchError("no high job ran")
    out: Figures = {
        "high_p50_ms": percentile(lat, 0.50),
        "high_p99_ms": percentile(lat, 0.99),
        "high_max_ms": lat[-1],
        "high_jobs": len(lat),
        "backlog_jobs_s": count / max(last - first, 1e-6),
    }
    if not ok:
        out["note"] = f"backlog: {count}/{s.prio_backlog} low jobs in {s.drain_timeout:.0f}s"
    if len(lat) < sent["sent"]:
        out["note"] = (out.get("note", "") + f"; {len(lat)}/{sent['sent']} high jobs ran").strip(
            "; "
        )
    return out


def priority_specialized(ctx: Context, a: Adapter) -> Figures:
    return priority(ctx, a, "specialized")


def priority_default(ctx: Context, a: Adapter) -> Figures:
    return priority(ctx, a, "default")


# -- 6. memory -----------------------------------------------------------------------
def memory(ctx: Context, a: Adapter) -> Figures:
    s = ctx.sizes
    r = ctx.r()
    r.flushall()
    workers = ctx.start(a, [a.worker(s.concurrency)], "memory")
    try:
        warm_up(ctx, a, workers, 100)
        time.sleep(1.0)
        idle = workers[0].rss_bytes()
        base = read_counts(r)["noop"][0]
        run_client(
            a,
            ctx.env(),
            ["enqueue", "--task", "noop", "--n", str(s.memory), "--mode", "fastest"],
            timeout=s.memory_timeout,
        )
        count, _, _, ok = wait_for(r, "noop", base + s.memory, s.memory_timeout, workers)
        time.sleep(1.0)
        after = workers[0].rss_bytes()
    finally:
        ctx.stop(workers)
    out: Figures = {
        "idle_mb": idle / 2**20,
        "after_mb": after / 2**20,
        "growth_pct": 100 * (after - idle) / idle,
        "jobs": count - base,
    }
    if not ok:
        out["note"] = f"only {count - base}/{s.memory} jobs ran in {s.memory_timeout:.0f}s"
    return out


WORKLOADS: dict[str, Callable[[Context, Adapter], Figures]] = {
    "enqueue": enqueue,
    "drain1": drain,
    "drain2": drain2,
    "latency": latency,
    "io": io,
    "priority_specialized": priority_specialized,
    "priority_default": priority_default,
    "memory": memory,
    "sqlite_drain1": sqlite_drain,
}
BANANAS_ONLY = {"sqlite_drain1"}
SINGLE_RUN = {"memory"}  # RSS does not need three runs of 100,000 jobs


def median_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)
