"""`python -m bench.harness [--quick] [--libs a,b] [--workloads x,y] [--runs N]`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import envs, machine, report
from .adapters import ADAPTERS, Adapter
from .adapters.base import BENCH, ROOT
from .procs import BenchError, Worker
from .redis_server import FLAGS, RedisServer
from .workloads import BANANAS_ONLY, SINGLE_RUN, WORKLOADS, Context, Sizes

NOTES = [
    "Completion is detected without touching the measured path: each job bumps an "
    "in-process counter; a 20 ms daemon thread per worker process publishes it to the "
    "private Redis (`bench/apps/probe.py`).",
    "Drain 'jobs/s from worker spawn' counts from launching the worker command (interpreter "
    "start, imports, connecting) to the last job, as issue 8 words it; 'first->last job' "
    "is the steady-state rate without start-up.",
    "Enqueue times exclude the client's start-up and first connection (one warm-up call); "
    "the batch API is called with 1,000 jobs per call. Libraries without a batch enqueue "
    "API have no batch figure.",
    "Queues are pre-filled with the fastest enqueue path the library has before a drain.",
    "Latency: the job carries time.time() at enqueue; the worker records start - enqueue. "
    "The client paces sends on an absolute schedule; client_max_late_ms shows its own lag.",
    "IO: rate = jobs / (last job end - first job start); the ideal at concurrency 50 and "
    "50 ms per job is 1,000 jobs/s.",
    "Priority: the low backlog is queued first, the workers start, and once the backlog "
    "is draining a client sends high jobs at a steady rate until the backlog is done.",
    "Memory: RSS summed over the worker's process group (supervisor + children where the "
    "library forks), after 100 warm-up jobs and 1 s idle, then after the jobs ran.",
    "Ratios '÷ best peer' are computed per run (same Redis, same load) and the median is "
    "shown; for latency and memory lower is better, so a ratio < 1 is better there.",
    "Each failure or timeout is recorded in the table footnotes, never fatal to the run.",
]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    p.add_argument("--runs", type=int, default=None, help="runs per workload (default 3)")
    p.add_argument("--libs", default="", help="comma list (default: all)")
    p.add_argument("--workloads", default="", help="comma list: " + ",".join(WORKLOADS))
    p.add_argument(
        "--out",
        default=None,
        help="report path (default bench/RESULTS.md; an A/B run with --baseline writes only "
        "bench/results/<run>.md, so it never replaces the peer comparison)",
    )
    p.add_argument(
        "--working-tree",
        action="store_true",
        help="measure src/ as it is on disk (default: a snapshot of the committed HEAD)",
    )
    p.add_argument(
        "--baseline",
        default="",
        help="also measure Bananas at this git revision, in the same run and interleaved "
        "with HEAD (an A/B), shown as the library bananas@REV",
    )
    return p.parse_args()


def main() -> int:
    args = parse()
    sizes = Sizes.quick() if args.quick else Sizes()
    runs = args.runs or (1 if args.quick else 3)
    libs = [x for x in args.libs.split(",") if x] or list(ADAPTERS)
    wanted = [x for x in args.workloads.split(",") if x] or list(WORKLOADS)
    for name in libs + wanted:
        if name not in ADAPTERS and name not in WORKLOADS:
            print(f"unknown library or workload: {name}", file=sys.stderr)
            return 2
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = BENCH / ".work" / stamp
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    raw_file = f"{stamp}{'-quick' if args.quick else ''}.json"
    data: dict[str, Any] = {
        "command": " ".join(["python -m bench.harness", *map(shlex.quote, sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "runs_per_workload": runs,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "load_start": machine.load(),
        "bananas_commit": machine.git_revision(ROOT),  # replaced below by the snapshot
        "sizes": sizes.__dict__,
        "libraries": {},
        "failures": {},
        "runs": {},
        "notes": NOTES,
        "raw_file": raw_file,
    }
    for name in libs:
        adapter = ADAPTERS[name]
        try:
            log(f"environment: {name}")
            envs.ensure(adapter)
            data["libraries"][name] = {
                "versions": envs.versions(adapter),
                "config": adapter.config,
                "guarantees": adapter.guarantees,
            }
        except Exception as exc:
            data["failures"][name] = f"install failed: {exc}"
            log(f"  {name}: {exc}")
    usable = [n for n in libs if n in data["libraries"]]
    src = None
    if not args.working_tree:
        src, rev = machine.snapshot_src(ROOT, work / "bananas-src")
        data["bananas_commit"] = f"{rev} (src/ exported from HEAD, uncommitted edits excluded)"
    adapters = dict(ADAPTERS)
    base_src, label = None, ""
    if args.baseline:
        base_src, base_rev = machine.snapshot_src(ROOT, work / "baseline-src", args.baseline)
        label = f"bananas@{base_rev}"
        adapters[label] = baseline_adapter(label)
        data["libraries"][label] = dict(data["libraries"].get("bananas", {}))
        data["baseline"] = {"library": label, "commit": base_rev}
        usable.insert(usable.index("bananas") + 1 if "bananas" in usable else 0, label)
    server = RedisServer(work)
    live: list[Worker] = []
    try:
        server.start()
        data["redis_version"] = server.version()
        data["redis_flags"] = "redis-server " + " ".join(shlex.quote(f) for f in FLAGS)
        ctx = Context(server.url, sizes, work / "logs", live=live, src=src)
        base_ctx = Context(server.url, sizes, work / "logs", live=live, src=base_src)
        for workload in wanted:
            fn = WORKLOADS[workload]
            names = [n for n in usable if workload not in BANANAS_ONLY or n in ("bananas", label)]
            table: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            data["runs"][workload] = table
            for run in range(1 if workload in SINGLE_RUN else runs):
                ctx.run = base_ctx.run = run
                for name in names:
                    here = base_ctx if name == label else ctx
                    table[name].append(measure(here, fn, workload, name, adapters[name], run))
                    save(results_dir / raw_file, data)
    except KeyboardInterrupt:  # `make bench`'s time limit: keep what was measured
        data["notes"] = [*NOTES, "**The run was interrupted; some workloads are missing.**"]
        log("interrupted: writing what was measured")
    finally:
        for worker in list(live):
            worker.stop(grace=2)
        server.stop()
    data["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    data["load_end"] = machine.load()
    save(results_dir / raw_file, data)
    text = report.render(data)
    out = args.out or (None if args.baseline else str(BENCH / "RESULTS.md"))
    if out:
        Path(out).write_text(text)
    (results_dir / raw_file).with_suffix(".md").write_text(text)
    log(f"wrote {out or 'no summary'} and bench/results/{raw_file}")
    return 0


def baseline_adapter(label: str) -> Adapter:
    """The Bananas adapter under another name: same venv and app, and the
    baseline's src/ snapshot goes first on PYTHONPATH (its Context's `src`)."""
    cls = type(ADAPTERS["bananas"])
    return type("BaselineAdapter", (cls,), {"name": label})()  # type: ignore[no-any-return]


def measure(
    ctx: Context, fn: Any, workload: str, name: str, adapter: Adapter, run: int
) -> dict[str, Any]:
    started = time.monotonic()
    try:
        figures: dict[str, Any] = fn(ctx, adapter)
    except BenchError as exc:
        figures = {"error": str(exc)}
    except Exception as exc:  # a harness bug or a peer misbehaving: record, go on
        figures = {"error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    figures["wall_s"] = round(time.monotonic() - started, 2)
    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()}
    log(f"{workload:<21} run {run + 1} {name:<9} {shown}")
    return figures


def save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, default=str))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
