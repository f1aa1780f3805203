"""What the Redis Cluster tests share: a fresh 3-primary/3-replica cluster,
real `bananas worker` processes on it, and a sink (the run log of
apps/clustered.py) on the standalone Redis of tests/conftest.py, outside
the cluster, so a killed primary cannot take the record of what ran with it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import redis
from apps.clustered import app
from chaos.analysis import RunLog
from support import BrokerView, WorkerFactory, WorkerProcess, wait_for
from topology import Cluster

from bananas.brokers.redis.cluster import key_slot
from bananas.brokers.redis.partitions import (
    home_keys,
    partition_keys,
    partition_of,
    partitions_key,
)
from bananas.config import Settings
from bananas.errors import BrokerError

PREFIX = "bananas"
CHUNK = 2000  # jobs per enqueue_many call


@dataclass
class Bed:
    cluster: Cluster
    sink: redis.Redis  # the standalone Redis the handlers log runs to
    workers: WorkerFactory
    sink_url: str
    views: list[BrokerView] = field(default_factory=list)

    def start_worker(
        self, *args: str, wait: bool = True, app: str = "apps.clustered:app", **env: str
    ) -> WorkerProcess:
        return self.workers.start(
            app,
            *args,
            wait=wait,
            TEST_REDIS_URL=self.sink_url,
            TEST_SINK_URL=self.sink_url,
            **env,
        )

    def view(self) -> BrokerView:
        view = BrokerView(self.cluster.url)
        self.views.append(view)
        return view

    def ran(self) -> int:
        """Jobs that completed a run at least once (test:runs has one field per job)."""
        return int(self.sink.hlen("test:runs"))

    def runlog(self, keys: list[str]) -> RunLog:
        return RunLog.read(self.sink, keys)

    def close(self) -> None:
        for view in self.views:
            view.close()


def configure() -> None:
    """The in-process app on the broker of the environment (REDIS_URL: the cluster)."""
    app.configure(Settings.load())


def enqueue_ticks(n: int, prefix: str = "j", job_type: str = "tick") -> dict[str, str]:
    """n `tick` (or `late`) jobs with generated ids, in batches; key -> job id."""
    configure()
    out: dict[str, str] = {}
    keys = [f"{prefix}{i}" for i in range(n)]
    for start in range(0, n, CHUNK):
        chunk = keys[start : start + CHUNK]
        handles = app.enqueue_many([app.spec(job_type, k=k) for k in chunk])
        out.update(zip(chunk, (h.id for h in handles), strict=True))
    return out


def primary_of_slots(cluster: Cluster) -> dict[int, int]:
    """slot -> port of the primary serving it, from CLUSTER SLOTS of a live node."""
    port = cluster.primaries()[0]
    with cluster.client(port) as c:
        reply = c.execute_command("CLUSTER SLOTS")
    owner: dict[int, int] = {}
    for entry in reply:
        first, last, primary = int(entry[0]), int(entry[1]), entry[2]
        for slot in range(first, last + 1):
            owner[slot] = int(primary[1])
    return owner


@dataclass(frozen=True)
class Layout:
    """Where a keyspace's partitions are: the count the keyspace was created
    with (the tests leave REDIS_PARTITIONS unset, as a user would), each
    partition's slot, and the primary serving each slot."""

    count: int
    slots: list[int]
    owner: dict[int, int]  # slot -> primary port

    def part(self, job_id: str) -> int:
        return partition_of(job_id, self.count)

    def primary(self, job_id: str) -> int:
        return self.owner[self.slots[self.part(job_id)]]

    def served_by(self, port: int) -> set[int]:
        return {p for p, slot in enumerate(self.slots) if self.owner[slot] == port}


def layout(cluster: Cluster) -> Layout:
    """The layout now (the keyspace must exist: after a first enqueue)."""
    with cluster.cluster_client() as c:
        raw = c.get(partitions_key(home_keys(PREFIX)))
    assert raw is not None, "the keyspace has no partition count yet"
    count = int(raw)
    slots = [key_slot(k.prefix) for k in partition_keys(PREFIX, count)]
    return Layout(count, slots, primary_of_slots(cluster))


def records_per_primary(cluster: Cluster) -> dict[int, int]:
    """Job records each primary holds, by SCAN on that primary itself (what is
    stored there, not what the client computes)."""
    counts = {}
    for port in cluster.primaries():
        with cluster.client(port, timeout=10) as c:
            counts[port] = sum(1 for _ in c.scan_iter(match=f"{PREFIX}:{{*}}:job:*", count=1000))
    return counts


def crashes(worker: WorkerProcess) -> list[str]:
    """Lines of a worker's log that say something broke in the process itself
    (not a job, not a broker hiccup it rides out)."""
    bad = []
    for line in worker.output().splitlines():
        if "Traceback" in line:
            bad.append(line)
            continue
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        name = str(event.get("event", ""))
        if name.endswith((".crash", ".forced_exit")) or event.get("level") == "critical":
            bad.append(line)
    return bad


def wait_drained(bed: Bed, n: int, timeout: float, what: str = "") -> float:
    """Until n distinct jobs ran and no lease is left; returns the seconds it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while bed.ran() < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}only {bed.ran()} of {n} jobs ran in {timeout}s")
        for w in bed.workers.started:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker {w.pid} died:\n{w.output()[-3000:]}")
        time.sleep(0.05)
    took = time.monotonic() - t0
    view = bed.view()
    wait_for(
        lambda: view.count("running") == 0,
        max(5.0, deadline - time.monotonic()),
        interval=0.1,
        message="every lease settled",
    )
    return took


def http_get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            body = resp.read().decode()
            return resp.status, (json.loads(body) if path != "/metrics" else body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, None


def wait_replicated(cluster: Cluster, timeout: float = 20) -> None:
    """Until every replica has everything its primary wrote so far."""

    def caught_up() -> bool:
        for port in cluster.primaries():
            with cluster.client(port) as c:
                info = c.info("replication")
            offsets = [v["offset"] for k, v in info.items() if k.startswith("slave")]
            if not offsets or min(offsets) < info["master_repl_offset"]:
                return False
        return True

    wait_for(caught_up, timeout, interval=0.05, message="every replica caught up")


class Producer(threading.Thread):
    """Enqueues `tick` jobs one call at a time (one acknowledgement each)
    until stopped, recording the acknowledged ones with the time of the ack;
    a call that raised is counted and its job left out (it may or may not
    exist: nothing was promised)."""

    def __init__(self, prefix: str, per_second: float = 400) -> None:
        super().__init__(daemon=True, name=f"producer-{prefix}")
        self.prefix = prefix
        self.interval = 1 / per_second
        self.acked: list[tuple[str, str, float]] = []  # key, job id, unix time of the ack
        self.failed = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self.unexpected: list[str] = []  # not a BrokerError: a bug to report
        self.longest = 0.0  # seconds of the slowest call (a failover stalls some)

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            key = f"{self.prefix}{n}"
            n += 1
            began = time.monotonic()
            try:
                handle = app.enqueue("tick", k=key)
            except BrokerError as exc:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                self.unexpected.append(f"{type(exc).__name__}: {exc}")
                self.failed += 1
            else:
                self.acked.append((key, handle.id, time.time()))
            finally:
                self.longest = max(self.longest, time.monotonic() - began)
            # paced, so the producer does not take the workers' CPU
            self._halt.wait(self.interval)

    def acked_since(self, t: float) -> int:
        return sum(1 for _, _, at in self.acked if at >= t)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        assert not self.is_alive(), "the producer did not stop"
