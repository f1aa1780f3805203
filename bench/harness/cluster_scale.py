"""Bananas on Redis Cluster against one standalone Redis (issue 16), in one run.

    python -m bench.harness.cluster_scale [--runs 3] [--jobs 20000] [--out F]

Topologies, each started here on free loopback ports with the harness'
flags (persistence off, noeviction): standalone redis-server; a cluster of
1 primary (all 16384 slots); a cluster of 3 primaries (contiguous thirds).
No replicas: the figures are the keyspace's cost, not replication's.

Per run and topology: JOBS no-op jobs of one type enqueued (batches of
5,000), then drained by 1 and by 2 worker processes (concurrency 50 each);
jobs/s from the first worker's start to the last job settled, and each
primary's Redis CPU (INFO cpu, user + sys) per job it served (the jobs whose
partition's slot it owns). Runs are interleaved across topologies; the report
gives medians and the ratios against standalone of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from .redis_server import FLAGS, free_port

SRC = Path(__file__).resolve().parents[2] / "src"
POLL_PROBES = 10

APP = """
from bananas import Bananas

app = Bananas()


@app.job(name="noop")
async def noop(**kw):
    return None
"""


class Topology:
    """Redis servers for one configuration, stopped by pid."""

    def __init__(self, tmp: Path, name: str, primaries: int) -> None:
        self.name, self.tmp, self.primaries = name, tmp / name, primaries
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        if self.primaries == 0:
            return f"redis://127.0.0.1:{self.ports[0]}/0"
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for _ in range(max(1, self.primaries)):
            port = free_port()
            while port + 10000 > 65535:  # the cluster bus listens on port + 10000
                port = free_port()
            extra = []
            if self.primaries:
                extra = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
            log = open(self.tmp / f"{port}.log", "wb")  # noqa: SIM115 (lives with the server)
            self.procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--dir", str(self.tmp), *FLAGS, *extra],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            self.ports.append(port)
        for port in self.ports:
            self._wait(lambda c: c.ping(), port)
        if self.primaries:
            self._join()

    def _join(self) -> None:
        n = len(self.ports)
        for i, port in enumerate(self.ports):
            first, last = i * 16384 // n, (i + 1) * 16384 // n - 1
            self.client(port).execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        for port in self.ports[1:]:
            self.client(port).execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])

        def ok(c: redis.Redis) -> bool:
            info = c.cluster("info")
            return bool(
                info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == n
            )

        for port in self.ports:
            self._wait(ok, port)

    def _wait(self, check: Any, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check(self.client(port)):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: redis on {port} not ready")
            time.sleep(0.05)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=10)

    def flush(self) -> None:
        for port in self.ports:
            self.client(port).flushall()

    def cpu(self) -> dict[int, float]:
        out = {}
        for port in self.ports:
            info = self.client(port).info("cpu")
            out[port] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return out

    def memory(self) -> int:
        return sum(int(self.client(p).info("memory")["used_memory"]) for p in self.ports)

    def owner_of_slot(self) -> list[int]:
        """slot -> port of the primary serving it."""
        owner = [self.ports[0]] * 16384
        if self.primaries:
            for first, last, primary, *_ in self.client(self.ports[0]).execute_command(
                "CLUSTER SLOTS"
            ):
                owner[int(first) : int(last) + 1] = [int(primary[1])] * (int(last) - int(first) + 1)
        return owner

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def worker(tmp: Path, url: str, n: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))}
    env.update(REDIS_URL=url, PYTHONPATH=f"{tmp}:{SRC}", LOG_FORMAT="json", HEALTH_PORT="0")
    return subprocess.Popen(
        [sys.executable, "-m", "bananas.cli", "worker", "--app", "scale_app:app"]
        + ["--concurrency", "50"],
        env=env,
        stdout=open(tmp / f"worker-{n}.log", "ab"),
        stderr=subprocess.STDOUT,
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def settled(url: str) -> int:
    from bananas.brokers import from_url

    broker = from_url(url)
    try:
        stats = await broker.stats()
        return sum(stats.ready.values()) + stats.active
    finally:
        await broker.close()


async def partition_slots(url: str) -> list[int]:
    from bananas.brokers.redis.partitioned import PartitionedBroker

    broker = PartitionedBroker(url)
    try:
        await broker.parts()
        return list(broker.slots)
    finally:
        await broker.close()


def poll_cost(topo: Topology) -> dict[int, float]:
    """Redis CPU seconds one completion poll costs each primary (subtracted)."""
    cpu0 = topo.cpu()
    for _ in range(POLL_PROBES):
        asyncio.run(settled(topo.url))
    cpu1 = topo.cpu()
    return {port: (cpu1[port] - cpu0[port]) / POLL_PROBES for port in topo.ports}


def drain(tmp: Path, topo: Topology, jobs: int, workers: int) -> dict[str, Any]:
    from bananas import Bananas
    from bananas.brokers.redis.partitions import partition_of

    topo.flush()
    memory0 = topo.memory()
    client = Bananas(topo.url)
    ids: list[str] = []
    for start in range(0, jobs, 5000):
        handles = client.enqueue_many([("noop", {"i": i}) for i in range(start, start + 5000)])
        ids += [h.id for h in handles]
    client.close()
    bytes_per_job = (topo.memory() - memory0) / jobs
    owner = topo.owner_of_slot()
    served: dict[int, int] = dict.fromkeys(topo.ports, 0)
    if topo.primaries:
        slots = asyncio.run(partition_slots(topo.url))
        for job_id in ids:
            served[owner[slots[partition_of(job_id, len(slots))]]] += 1
    else:
        served[topo.ports[0]] = jobs
    cost = poll_cost(topo)
    cpu0 = topo.cpu()
    logs = [tmp / f"worker-{n}.log" for n in range(workers)]
    for log in logs:
        log.unlink(missing_ok=True)
    procs = [worker(tmp, topo.url, n) for n in range(workers)]
    polls = 0
    try:
        # The clock starts when the first worker says it started: a start-up
        # (imports, the slot map) is not the drain.
        deadline = time.monotonic() + 120
        while not any('"worker.started"' in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topo.name}: no worker started")
            time.sleep(0.005)
        began = time.monotonic()
        deadline = began + 300
        while asyncio.run(settled(topo.url)):
            polls += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topo.name}: drain did not finish")
            time.sleep(0.1)
        polls += 1
        elapsed = time.monotonic() - began
        cpu1 = topo.cpu()
    finally:
        stop(procs)
    for port in topo.ports:
        cpu1[port] -= polls * cost[port]
    per_primary = {
        str(port): {
            "jobs": served[port],
            "share": round(served[port] / jobs, 3),
            "redis_cpu_us_per_job": round(
                (cpu1[port] - cpu0[port]) / max(1, served[port]) * 1e6, 1
            ),
        }
        for port in topo.ports
    }
    return {
        "topology": topo.name,
        "workers": workers,
        "jobs": jobs,
        "jobs_per_s": round(jobs / elapsed),
        "bytes_per_queued_job": round(bytes_per_job),
        "primaries": per_primary,
    }


def report(rows: list[dict[str, Any]], runs: int, jobs: int) -> str:
    def med(topology: str, workers: int, field: str) -> float:
        values = [r[field] for r in rows if r["topology"] == topology and r["workers"] == workers]
        return statistics.median(values) if values else 0.0

    def cpu(topology: str, workers: int) -> list[float]:
        picked = [r for r in rows if r["topology"] == topology and r["workers"] == workers]
        ports = sorted({p for r in picked for p in r["primaries"]})
        return [
            statistics.median(r["primaries"][p]["redis_cpu_us_per_job"] for r in picked)
            for p in ports
        ]

    lines = [
        f"Bananas drain on Redis Cluster vs standalone: {jobs:,} no-op jobs, {runs} interleaved "
        "runs, medians (`python -m bench.harness.cluster_scale`).",
        "",
        "| topology | workers | jobs/s | ÷ standalone | Redis CPU µs/job per primary | ÷ standalone |",
        "|---|---|---|---|---|---|",
    ]
    for workers in (1, 2):
        base = med("standalone", workers, "jobs_per_s")
        base_cpu = cpu("standalone", workers)[0] if cpu("standalone", workers) else 0.0
        for topology in ("standalone", "cluster-1", "cluster-3"):
            rate = med(topology, workers, "jobs_per_s")
            per = cpu(topology, workers)
            lines.append(
                f"| {topology} | {workers} | {rate:,.0f} | {rate / base:.2f}× | "
                + ", ".join(f"{c:.1f}" for c in per)
                + " | "
                + ", ".join(f"{c / base_cpu:.2f}×" for c in per)
                + " |"
            )
    lines += [
        "",
        "Redis memory per queued job (all primaries): "
        + ", ".join(
            f"{t} {med(t, 1, 'bytes_per_queued_job'):,.0f} B"
            for t in ("standalone", "cluster-1", "cluster-3")
        )
        + ".",
    ]
    shares = [
        r["primaries"][p]["share"]
        for r in rows
        if r["topology"] == "cluster-3"
        for p in r["primaries"]
    ]
    if shares:
        lines += ["", f"Jobs per primary on 3 primaries: {min(shares):.1%} to {max(shares):.1%}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "scale_app.py").write_text(APP)
        topos = [
            Topology(tmp, "standalone", 0),
            Topology(tmp, "cluster-1", 1),
            Topology(tmp, "cluster-3", 3),
        ]
        try:
            for topo in topos:
                topo.start()
            for run in range(args.runs):
                for workers in (1, 2):
                    for topo in topos:
                        row = drain(tmp, topo, args.jobs, workers)
                        row["run"] = run
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            for topo in topos:
                topo.stop()
    text = report(rows, args.runs, args.jobs)
    print(text)
    if args.out:
        args.out.write_text(text + "\n```json\n" + json.dumps(rows, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
