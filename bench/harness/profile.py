"""Profile Bananas' drain with py-spy: `python -m bench.harness.profile [--jobs N]`.

Starts a private Redis and one `bananas worker`, attaches py-spy (sampling,
--nonblocking so the worker is not paused), batch-enqueues N no-op jobs, waits
until they ran, stops py-spy and prints the hottest functions by self time and
by inclusive time. Raw collapsed stacks go to bench/results/profile-drain-*.txt.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import re
import signal
import subprocess
import time
from pathlib import Path

from . import envs, machine
from .adapters import ADAPTERS
from .adapters.base import BENCH, ROOT, Adapter
from .procs import run_client
from .redis_server import RedisServer
from .workloads import Context, Sizes, wait_for


class ToolsAdapter(Adapter):
    name = "tools"


FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m.group('fn')}"


def summarize(raw: Path, top: int = 20) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = probe = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [short(f) for f in stack.split(";")]
        if any(f.startswith("probe.py:") for f in frames):
            probe += count  # the harness's own publisher thread, not Bananas
            continue
        total += count
        self_t[frames[-1]] += count
        for name in set(frames):
            incl[name] += count
    out = [f"{total} samples of the worker ({probe} more in the bench probe thread, left out)"]
    out += ["", "self time (where the CPU is):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_t.most_common(top)]
    out += ["", "inclusive time (Bananas and redis-py frames):"]
    ours = [(k, v) for k, v in incl.items() if k.startswith(("bananas/", "redis/"))]
    ours.sort(key=lambda kv: -kv[1])
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours[:top]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.harness.profile")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--working-tree", action="store_true", help="profile src/ as on disk")
    args = parser.parse_args()
    tools = ToolsAdapter()
    envs.ensure(tools)
    bananas = ADAPTERS["bananas"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = BENCH / ".work" / f"profile-{stamp}"
    raw = BENCH / "results" / f"profile-drain-{stamp}.txt"
    src = None
    if not args.working_tree:
        src, rev = machine.snapshot_src(ROOT, work / "bananas-src")
        print(f"profiling src/ at HEAD {rev}")
    server = RedisServer(work)
    server.start()
    ctx = Context(server.url, Sizes(), work / "logs", live=[], src=src)
    workers = ctx.start(bananas, [bananas.worker(10)], "profile")
    spy = None
    try:
        time.sleep(1.5)  # worker up and idle
        spy = subprocess.Popen([
            tools.bin("py-spy"), "record", "--pid", str(workers[0].proc.pid), "--format", "raw",
            "--rate", str(args.rate), "--nonblocking", "-o", str(raw),
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(1.0)
        started = time.time()
        run_client(bananas, ctx.env(), ["enqueue", "--n", str(args.jobs), "--mode", "batch"], 120)
        count, _, last, _ = wait_for(server.client(), "noop", args.jobs, 120, workers)
        print(
            f"{count} jobs in {last - started:.2f}s under py-spy ({count / (last - started):.0f}"
            " jobs/s incl. enqueue)"
        )
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        ctx.stop(workers)
        server.stop()
    text = summarize(raw)
    (raw.with_suffix(".summary.txt")).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
