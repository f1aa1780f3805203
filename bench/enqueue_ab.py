"""Where one `fn.enqueue()` call's time goes, HEAD against other commits.

Each version's src/ is exported (`git archive`) and run in its own process,
versions alternating round by round on one private redis-server (flushed
between rounds): per call, the client's CPU time (user + system, so the
socket calls count), the Redis server's CPU time (INFO cpu) and the wall
time, over N calls after one warm-up call. Medians over the rounds, and the
median of the per-round ratios to the first version. On a machine shared
with other work the absolute figures move a lot; the interleaving is what
makes the ratios comparable.

    .venv/bin/python -m bench.enqueue_ab [REV ...] [--rounds 10] [--calls 3000]

(default: main against HEAD; HEAD is always measured last in a round).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from bench.harness.machine import load, snapshot_src
from bench.harness.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent

CLIENT = r"""
import os, sys, time, redis
from bananas import Bananas
app = Bananas(os.environ["AB_URL"])
@app.job()
async def noop() -> None: ...
noop.enqueue(_priority="normal")
info = redis.Redis.from_url(os.environ["AB_URL"])
def server():
    cpu = info.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]
n = int(sys.argv[1])
s0, c0, w0 = server(), time.process_time(), time.perf_counter()
for _ in range(n):
    noop.enqueue(_priority="normal")
w1, c1, s1 = time.perf_counter(), time.process_time(), server()
print((c1 - c0) / n * 1e6, (s1 - s0) / n * 1e6, (w1 - w0) / n * 1e6)
app.close()
"""
FIGURES = ("client CPU", "Redis CPU", "wall")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.enqueue_ab")
    p.add_argument("revs", nargs="*", default=["main"])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=3000)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enqueue-ab-"))
    versions = {}
    for rev in [*args.revs, "HEAD"]:
        src, commit = snapshot_src(ROOT, work / rev.replace("/", "_"), rev)
        versions[f"{rev} ({commit})"] = src
    port = free_port()
    flags = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), *flags], stdout=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                subprocess.run(["sleep", "0.05"], check=True)
        print(f"load at start: {load()}")
        figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, src in versions.items():
                env = {**os.environ, "PYTHONPATH": str(src), "AB_URL": url}
                out = subprocess.run(
                    [sys.executable, "-c", CLIENT, str(args.calls)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                figures[name].append(tuple(float(x) for x in out.split()))
                r.flushall()
        print(f"load at end: {load()}")
        first = next(iter(versions))
        print(f"µs per fn.enqueue(), median of {args.rounds} rounds x {args.calls} calls")
        print("| version | " + " | ".join(FIGURES) + " | / " + first + " (client, Redis, wall) |")
        print("|---|" + "---|" * (len(FIGURES) + 1))
        for name, rows in figures.items():
            medians = [statistics.median(row[i] for row in rows) for i in range(len(FIGURES))]
            ratios = [
                statistics.median(a[i] / b[i] for a, b in zip(rows, figures[first], strict=True))
                for i in range(len(FIGURES))
            ]
            print(
                f"| {name} | "
                + " | ".join(f"{m:.1f}" for m in medians)
                + " | "
                + ", ".join(f"{x:.2f}x" for x in ratios)
                + " |"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
