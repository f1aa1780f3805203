"""bench/RESULTS.md from one run's raw JSON: medians, spread, same-run ratios, targets."""

from __future__ import annotations

import math
import statistics
from typing import Any

DASH = "\u2013"
TIMES = "\u00d7"

# workload -> [(metric, label, higher_is_better)]
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "enqueue": [
        ("single_jobs_s", "one call per job, jobs/s", True),
        ("batch_jobs_s", "batch API, jobs/s", True),
    ],
    "drain1": [
        ("jobs_s", "jobs/s from worker spawn", True),
        ("steady_jobs_s", "jobs/s first->last job", True),
        ("startup_s", "spawn->first job, s", False),
    ],
    "drain2": [
        ("jobs_s", "jobs/s from worker spawn", True),
        ("steady_jobs_s", "jobs/s first->last job", True),
    ],
    "latency": [
        ("p50_ms", "p50 ms", False),
        ("p99_ms", "p99 ms", False),
        ("max_ms", "max ms", False),
    ],
    "io": [("jobs_s", "jobs/s", True), ("pct_ideal", "% of ideal 1,000/s", True)],
    "priority_specialized": [
        ("high_p50_ms", "high p50 ms", False),
        ("high_p99_ms", "high p99 ms", False),
        ("high_max_ms", "high max ms", False),
        ("backlog_jobs_s", "low backlog jobs/s", True),
    ],
    "priority_default": [
        ("high_p50_ms", "high p50 ms", False),
        ("high_p99_ms", "high p99 ms", False),
        ("high_max_ms", "high max ms", False),
        ("backlog_jobs_s", "low backlog jobs/s", True),
    ],
    "memory": [
        ("idle_mb", "idle RSS MB", False),
        ("after_mb", "RSS after jobs MB", False),
        ("growth_pct", "growth %", False),
        ("jobs", "jobs run", True),
    ],
    "sqlite_drain1": [
        ("jobs_s", "jobs/s from worker spawn", True),
        ("steady_jobs_s", "jobs/s first->last job", True),
    ],
}

TITLES = {
    "enqueue": "1. Enqueue {enqueue:,} no-op jobs from one client",
    "drain1": "2a. Drain {drain:,} queued no-op jobs, one worker process "
    "(concurrency {concurrency})",
    "drain2": "2b. Drain {drain:,} queued no-op jobs, two worker processes",
    "latency": "3. Latency: idle worker, {latency:,} jobs at {latency_rate:.0f}/s, enqueue->start",
    "io": "4. IO: {io:,} jobs sleeping 50 ms, one process, concurrency {io_concurrency}",
    "priority_specialized": "5a. Priority isolation, specialized mode: high jobs at "
    "{prio_rate:.0f}/s while a {prio_backlog:,}-job low backlog drains",
    "priority_default": "5b. Priority isolation, default mode (two identical workers)",
    "memory": "6. Memory: worker RSS idle and after {memory:,} jobs (one run)",
    "sqlite_drain1": "7. Bananas on SQLite vs Redis: drain {drain:,} jobs, one process",
}


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def values(runs: list[dict[str, Any]], metric: str) -> list[float]:
    return [float(r[metric]) for r in runs if "error" not in r and metric in r]


def summary(runs: list[dict[str, Any]], metric: str) -> str:
    vals = values(runs, metric)
    if not vals:
        return DASH
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(vals))}{DASH}{fmt(max(vals))})"


def same_run_ratio(
    by_lib: dict[str, list[dict[str, Any]]], lib: str, metric: str, higher: bool
) -> float | None:
    """Median over runs of lib / best peer (Bananas excluded from 'peer') in that run."""
    ratios = []
    for i, run in enumerate(by_lib.get(lib, [])):
        if "error" in run or metric not in run:
            continue
        peers = [
            float(runs[i][metric])
            for name, runs in by_lib.items()
            if name != "bananas"
            and i < len(runs)
            and "error" not in runs[i]
            and metric in runs[i]
            and "note" not in runs[i]
        ]
        if not peers:
            continue
        best = max(peers) if higher else min(peers)
        if best:
            ratios.append(float(run[metric]) / best)
    return statistics.median(ratios) if ratios else None


def median(data: dict[str, Any], workload: str, lib: str, metric: str) -> float | None:
    vals = values(data["runs"].get(workload, {}).get(lib, []), metric)
    return statistics.median(vals) if vals else None


def workload_table(data: dict[str, Any], workload: str) -> list[str]:
    by_lib: dict[str, list[dict[str, Any]]] = data["runs"].get(workload, {})
    metrics = [m for m in METRICS[workload] if any(values(r, m[0]) for r in by_lib.values())]
    if not metrics:
        metrics = METRICS[workload][:1]
    head = ["library", *[label for _, label, _ in metrics]]
    ratio_metric = metrics[0]
    has_ratio = workload not in ("memory", "sqlite_drain1")
    if has_ratio:
        head.append(f"÷ best peer ({ratio_metric[1]})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lib, runs in by_lib.items():
        errors = [r["error"] for r in runs if "error" in r]
        notes = sorted({r["note"] for r in runs if "note" in r})
        if errors and len(errors) == len(runs):
            cells = [f"{lib} \u00b9", *[DASH] * len(metrics)] + ([DASH] if has_ratio else [])
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells = [lib, *[summary(runs, m) for m, _, _ in metrics]]
        if has_ratio:
            ratio = same_run_ratio(by_lib, lib, ratio_metric[0], ratio_metric[2])
            cells.append(f"{ratio:.2f}{TIMES}" if ratio is not None else DASH)
        if notes or errors:
            cells[0] += " ¹"
        lines.append("| " + " | ".join(cells) + " |")
    foot = []
    for lib, runs in by_lib.items():
        msgs = sorted(
            {r.get("error") or r.get("note") for r in runs if r.get("error") or r.get("note")}
        )
        for msg in msgs:
            foot.append(f"- {lib}: {msg}")
    if foot:
        lines += ["", "¹ " + foot[0][2:], *foot[1:]]
    return lines


def _steady_ratio(data: dict[str, Any]) -> float | None:
    one = median(data, "drain1", "bananas", "steady_jobs_s")
    two = median(data, "drain2", "bananas", "steady_jobs_s")
    return two / one if one and two else None


def targets(data: dict[str, Any]) -> list[str]:
    runs = data["runs"]
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(name: str, measured: float | None, goal: float, unit: str, higher: bool) -> None:
        if measured is None:
            rows.append((name, "not measured", f"{goal:g}{unit}", None))
            return
        ok = measured >= goal if higher else measured <= goal
        margin = measured / goal if goal else math.inf
        rows.append(
            (
                name,
                f"{fmt(measured)}{unit}",
                f"{'≥' if higher else '≤'} {goal:g}{unit} ({TIMES}{margin:.2f} of target)",
                ok,
            )
        )

    d1 = runs.get("drain1", {})
    add(
        "drain, 1 process: Bananas ÷ best peer (same run)",
        same_run_ratio(d1, "bananas", "jobs_s", True) if d1 else None,
        2.0,
        TIMES,
        True,
    )
    add(
        "(same, steady rate first->last job, start-up excluded)",
        same_run_ratio(d1, "bananas", "steady_jobs_s", True) if d1 else None,
        2.0,
        TIMES,
        True,
    )
    one, two = (
        median(data, "drain1", "bananas", "jobs_s"),
        median(data, "drain2", "bananas", "jobs_s"),
    )
    add(
        "drain, 2 processes ÷ Bananas 1 process",
        two / one if one and two else None,
        1.8,
        TIMES,
        True,
    )
    add(
        "(same two, steady rate first->last job, start-up excluded)",
        _steady_ratio(data),
        1.8,
        TIMES,
        True,
    )
    add(
        "enqueue, batch",
        median(data, "enqueue", "bananas", "batch_jobs_s"),
        50_000,
        " jobs/s",
        True,
    )
    en = runs.get("enqueue", {})
    add(
        "enqueue, one call per job ÷ best peer (same run)",
        same_run_ratio(en, "bananas", "single_jobs_s", True) if en else None,
        1.0,
        TIMES,
        True,
    )
    add("latency p50", median(data, "latency", "bananas", "p50_ms"), 1.0, " ms", False)
    add("latency p99", median(data, "latency", "bananas", "p99_ms"), 2.0, " ms", False)
    add("io, % of ideal", median(data, "io", "bananas", "pct_ideal"), 97, " %", True)
    add(
        "priority, specialized: high p99",
        median(data, "priority_specialized", "bananas", "high_p99_ms"),
        20,
        " ms",
        False,
    )
    add("memory, idle RSS", median(data, "memory", "bananas", "idle_mb"), 60, " MB", False)
    add(
        "memory, growth after jobs",
        median(data, "memory", "bananas", "growth_pct"),
        10,
        " %",
        False,
    )
    add(
        "SQLite drain, 1 process",
        median(data, "sqlite_drain1", "bananas", "jobs_s"),
        1000,
        " jobs/s",
        True,
    )
    out = ["| target (issue 8) | Bananas | goal | result |", "|---|---|---|---|"]
    for name, measured, goal, ok in rows:
        verdict = "not measured" if ok is None else ("**pass**" if ok else "**miss**")
        out.append(f"| {name} | {measured} | {goal} | {verdict} |")
    return out


def sqlite_vs_redis(data: dict[str, Any]) -> str:
    lite = median(data, "sqlite_drain1", "bananas", "jobs_s")
    red = median(data, "drain1", "bananas", "jobs_s")
    if lite is None or red is None:
        return "Redis figure for comparison: not measured in this run."
    return (
        f"Same workload on Redis in this run (table 2a): {fmt(red)} jobs/s; "
        f"SQLite is {lite / red:.2f}{TIMES} of Redis."
    )


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        "# Bananas benchmark results",
        "",
        "Written by `bench/harness` (see `bench/README.md`); the raw figures of every run are "
        f"in `bench/results/{data['raw_file']}` (earlier runs: the other files there).",
        "",
        f"- **Command:** `{data['command']}` ({data['mode']} mode, {data['runs_per_workload']} "
        f"runs per workload, medians with min{DASH}max spread)",
        f"- **Date:** {data['started']} → {data['finished']}",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['os']}",
        f"- **Load:** at start `{data['load_start']}`; at end `{data['load_end']}` "
        "(other engineers share this 2-core machine: prefer the same-run ratios)",
        f"- **Redis:** {data['redis_version']}, private loopback server started by the "
        f"harness: `{data['redis_flags']}` (persistence off for every library alike)",
        f"- **Bananas:** commit {data['bananas_commit']}",
        "",
        "## Libraries",
        "",
        "| library | versions | configuration | guarantees in this configuration |",
        "|---|---|---|---|",
    ]
    for name, info in data["libraries"].items():
        vers = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
        lines.append(f"| {name} | {vers} | {info['config']} | {info['guarantees']} |")
    for name, err in data.get("failures", {}).items():
        lines.append(f"| {name} | **not measured** | {err} | |")
    lines += ["", "## Targets (issue 8)", "", *targets(data), ""]
    sizes = data["sizes"]
    for workload in METRICS:
        if workload not in data["runs"]:
            continue
        lines += [f"## {TITLES[workload].format(**sizes)}", "", *workload_table(data, workload), ""]
        if workload == "sqlite_drain1":
            lines += [sqlite_vs_redis(data), ""]
    lines += ["## Notes", "", *[f"- {n}" for n in data.get("notes", [])], ""]
    return "\n".join(lines)
