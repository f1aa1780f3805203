"""What rate limits cost (issue 17, "Unused controls cost nothing ... used
ones are measured": a rate limit far above the drain rate), on a fresh
redis-server, in one session. A copy of unique_cost.py's method.

    python -m bench.harness.rate_cost [--before SRC] [--jobs 20000] [--pairs 4] [--out F]

Three cases, interleaved PAIRS times, each round starting with the next
case (the machine is shared: compare within a round):
- plain: JOBS no-op jobs, the worker's app declaring no rate limit (no
  admission: the path of every app that does not use the feature);
- limited: JOBS no-op jobs of a `rate_limit="100000/s"` type, far above
  what one worker drains (every batch is admitted, one call per dequeue);
- before (with --before, e.g. a `git archive` of the branch this one came
  from): the plain case on that source, to show the unused feature changed
  nothing.

Per case: enqueue time (enqueue_many in batches of 5,000, in a process of
its own running the case's source), then the drain by one worker
(concurrency 50): jobs/s from its `worker.started` line to the last job
settled, and the CPU per job of the worker and of Redis (INFO cpu), which
swing much less than wall-clock rates on a shared machine.
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
from .types_scale import cpu_s, redis_cpu_s

SRC = Path(__file__).resolve().parents[2] / "src"
WORKER = (sys.executable, "-m", "bananas.cli", "worker", "--app")

APP = """
from bananas import Bananas

app = Bananas()


async def noop(**kw):
    return None


app.job(name="plain")(noop)
"""
LIMITED_APP = """
from bananas import Bananas

app = Bananas()


async def noop(**kw):
    return None


app.job(name="limited", rate_limit="100000/s")(noop)
"""

ENQUEUE = """
import json, sys, time
name, jobs = sys.argv[1], int(sys.argv[2])
import rate_app
client = rate_app.app  # REDIS_URL: the harness' server
client.broker.sync.get_result("warm-up")  # connect (and the ACL probe) before the clock
began = time.perf_counter()
for start in range(0, jobs, 5000):
    batch = [(name, {"i": i}) for i in range(start, min(start + 5000, jobs))]
    handles = client.enqueue_many(batch)
print(json.dumps({"s": time.perf_counter() - began}))
"""


def run_case(tmp: Path, server: RedisServer, src: Path, name: str, jobs: int) -> dict[str, Any]:
    server.flush()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))},
        "REDIS_URL": server.url,
        "PYTHONPATH": f"{tmp}{os.pathsep}{src}",
        "LOG_FORMAT": "json",
        "HEALTH_PORT": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", ENQUEUE, name, str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    enqueued = json.loads(out.stdout)
    redis = server.client()
    log = open(tmp / f"worker-{name}.log", "w+b")  # noqa: SIM115 (read below)
    proc = subprocess.Popen(
        [
            *WORKER,
            "limited_app:app" if name == "limited" else "rate_app:app",
            "--concurrency",
            "50",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while b'"worker.started"' not in (tmp / f"worker-{name}.log").read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.01)
        began, cpu0, rcpu0 = time.monotonic(), cpu_s(proc.pid), redis_cpu_s(redis)
        ready = f"bananas:ready:normal:{name}"
        while redis.llen(ready) or redis.zcard("bananas:active"):
            time.sleep(0.01)
        elapsed = time.monotonic() - began
        cpu, rcpu = cpu_s(proc.pid) - cpu0, redis_cpu_s(redis) - rcpu0
        parked = int(redis.zcard("bananas:throttled:limited"))
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return {
        "enqueue_jobs_per_s": round(jobs / enqueued["s"]),
        "drain_jobs_per_s": round(jobs / elapsed),
        "worker_cpu_us_per_job": round(cpu / jobs * 1e6, 1),
        "redis_cpu_us_per_job": round(rcpu / jobs * 1e6, 1),
        "parked": parked,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, default=None, help="source of the branch before")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cases: list[tuple[str, Path, str]] = [("plain", SRC, "plain"), ("limited", SRC, "limited")]
    if args.before is not None:
        cases.append(("before", args.before.resolve(), "plain"))
    rows: dict[str, list[dict[str, Any]]] = {case: [] for case, _, _ in cases}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "rate_app.py").write_text(APP)
        (tmp / "limited_app.py").write_text(LIMITED_APP)
        server = RedisServer(tmp / "redis")
        server.start()
        try:
            for n in range(args.pairs):
                # Each round starts with the next case: no case always runs first.
                for case, src, job_type in cases[n % len(cases) :] + cases[: n % len(cases)]:
                    rows[case].append(run_case(tmp, server, src, job_type, args.jobs))
        finally:
            server.stop()
    fields = ("enqueue_jobs_per_s", "drain_jobs_per_s", "worker_cpu_us_per_job")
    fields += ("redis_cpu_us_per_job",)
    summary: dict[str, Any] = {
        case: {f: statistics.median(r[f] for r in runs) for f in fields}
        for case, runs in rows.items()
    }
    for case in rows:
        if case == "plain":
            continue
        summary[f"{case}_vs_plain"] = {
            f: round(
                statistics.median(
                    b[f] / a[f] for a, b in zip(rows["plain"], rows[case], strict=True)
                ),
                3,
            )
            for f in fields
        }
    result = {"jobs": args.jobs, "pairs": args.pairs, "summary": summary, "runs": rows}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
