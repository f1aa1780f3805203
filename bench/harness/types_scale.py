"""What a worker costs as its number of job types grows (issue 14, "Cost that
grows with the work"), on a fresh redis-server.

    python -m bench.harness.types_scale [--out bench/results/types-scale-<ts>.md]

- start-up: seconds from spawning `bananas worker` (concurrency 50) to its
  `worker.started` line, and RSS then, at 1 / 300 / 1,000 job types, strict
  and weighted;
- idle growth: RSS again after IDLE seconds with nothing queued;
- drain: jobs/s for DRAIN_JOBS no-op jobs (all of one type, the worker's
  first, normal priority) with the worker handling 1 or 300 types, PAIRS
  interleaved pairs, and the median of the per-pair ratios;
- Redis bytes per queued small job (`INFO memory` used_memory delta / jobs,
  and `MEMORY USAGE` of one record).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .redis_server import RedisServer

SRC = Path(__file__).resolve().parents[2] / "src"
IDLE = 10.0
DRAIN_JOBS = 20_000
PAIRS = 4

APP = """
from bananas import Bananas

app = Bananas()
N = int(__import__("os").environ["TYPES"])


async def noop(**kw):
    return None


for i in range(N):
    app.job(name=f"t{i:04d}")(noop)
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Run:
    def __init__(self, tmp: Path, url: str, types: int, policy: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))}
        env.update(
            REDIS_URL=url,
            TYPES=str(types),
            PYTHONPATH=f"{tmp}:{SRC}",
            LOG_FORMAT="json",
            HEALTH_PORT="0",
            WORKER_PRIORITY_POLICY=policy,
        )
        self.log = tmp / f"w-{types}-{policy}.log"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bananas.cli",
                "worker",
                "--app",
                "types_app:app",
                "--concurrency",
                "50",
            ],
            env=env,
            stdout=open(self.log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

    def wait_started(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"worker.started"' in self.log.read_text(errors="replace"):
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            time.sleep(0.01)
        raise RuntimeError("worker did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def startup(tmp: Path, server: RedisServer, types: int, policy: str) -> dict[str, float]:
    server.flush()
    run = Run(tmp, server.url, types, policy)
    try:
        seconds = run.wait_started()
        time.sleep(1.0)
        rss0 = rss_kb(run.proc.pid)
        time.sleep(IDLE)
        rss1 = rss_kb(run.proc.pid)
    finally:
        run.stop()
    return {
        "types": types,
        "policy": policy,
        "startup_s": round(seconds, 3),
        "rss_mb": round(rss0 / 1024, 1),
        "idle_growth_mb_per_s": round((rss1 - rss0) / 1024 / IDLE, 3),
    }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(redis: Any) -> float:
    info = redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drain(tmp: Path, server: RedisServer, types: int) -> dict[str, float]:
    """jobs/s, and CPU per job of the worker and of Redis: on a shared
    machine the wall-clock rate swings with the neighbours' load, the CPU a
    job costs much less."""
    from bananas import Bananas

    server.flush()
    client = Bananas(server.url)
    for start in range(0, DRAIN_JOBS, 5000):
        client.enqueue_many([("t0000", {"i": i}) for i in range(start, start + 5000)])
    run = Run(tmp, server.url, types, "strict")
    redis = server.client()
    try:
        run.wait_started()
        began, cpu0, rcpu0 = time.monotonic(), cpu_s(run.proc.pid), redis_cpu_s(redis)
        while redis.llen("bananas:ready:normal:t0000") or redis.zcard("bananas:active"):
            time.sleep(0.01)
        elapsed = time.monotonic() - began
        cpu, rcpu = cpu_s(run.proc.pid) - cpu0, redis_cpu_s(redis) - rcpu0
    finally:
        run.stop()
        client.close()
    return {
        "types": types,
        "jobs": DRAIN_JOBS,
        "jobs_per_s": round(DRAIN_JOBS / elapsed),
        "worker_cpu_us_per_job": round(cpu / DRAIN_JOBS * 1e6, 1),
        "redis_cpu_us_per_job": round(rcpu / DRAIN_JOBS * 1e6, 1),
    }


def redis_bytes(server: RedisServer, jobs: int = 10_000) -> dict[str, float]:
    from bananas import Bananas

    server.flush()
    redis = server.client()
    before = int(redis.info("memory")["used_memory"])
    client = Bananas(server.url)
    handles = client.enqueue_many([("t0000", {"i": i}) for i in range(jobs)])
    after = int(redis.info("memory")["used_memory"])
    record = int(redis.memory_usage(f"bananas:job:{handles[0].id}") or 0)
    client.close()
    return {"jobs": jobs, "bytes_per_job": round((after - before) / jobs), "record_key": record}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="skip 1,000 types strict")
    parser.add_argument("--src", type=Path, default=None, help="the bananas source to run")
    parser.add_argument("--drain-only", action="store_true", help="only the drain pairs")
    args = parser.parse_args()
    if args.src is not None:  # e.g. `git archive` of an older commit, for "before"
        global SRC
        SRC = args.src.resolve()
    results: dict[str, list[dict[str, float]] | dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "types_app.py").write_text(APP)
        server = RedisServer(tmp / "redis")
        server.start()
        try:
            cases = [(1, "strict"), (300, "strict"), (1000, "weighted")]
            if not args.quick:
                cases.insert(2, (1000, "strict"))
            if not args.drain_only:
                results["startup"] = [startup(tmp, server, n, p) for n, p in cases]
            # Interleaved pairs: the machine is shared, so compare within a pair.
            runs = [drain(tmp, server, n) for _ in range(PAIRS) for n in (1, 300)]
            results["drain"] = runs
            ratios = sorted(
                b["jobs_per_s"] / a["jobs_per_s"]
                for a, b in zip(runs[::2], runs[1::2], strict=True)
            )
            results["drain_300_vs_1"] = {
                "median_ratio": round(statistics.median(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
            }
            for who in ("worker", "redis"):
                field = f"{who}_cpu_us_per_job"
                results[f"{who}_cpu_300_vs_1"] = {
                    "median_ratio": round(
                        statistics.median(
                            b[field] / a[field] for a, b in zip(runs[::2], runs[1::2], strict=True)
                        ),
                        3,
                    ),
                    "1_type": statistics.median(r[field] for r in runs[::2]),
                    "300_types": statistics.median(r[field] for r in runs[1::2]),
                }
            if not args.drain_only:
                results["redis"] = redis_bytes(server)
        finally:
            server.stop()
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
