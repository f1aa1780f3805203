"""A Redis primary and one replica (`--replicaof`) on free loopback ports, for
the REDIS_MIN_REPLICAS tests: start, pause (SIGSTOP) and resume the replica,
cut it off, promote it (REPLICAOF NO ONE), read the primary's WAIT count;
and the failover scenario the loss figures come from (tests/failover,
bench/min_replicas.py)."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from support import RedisServer, wait_for

from bananas import Bananas
from bananas.config import Settings
from bananas.errors import BananasError
from bananas.keys import Keys


def replica_server(directory: Path, primary_port: int) -> RedisServer:
    """A redis-server started as the replica of `primary_port`."""
    return RedisServer(directory, extra_args=("--replicaof", "127.0.0.1", str(primary_port)))


class Replicated:
    """A primary and its replica; `url` is the primary's."""

    def __init__(self, directory: Path) -> None:
        (directory / "primary").mkdir(parents=True, exist_ok=True)
        (directory / "replica").mkdir(parents=True, exist_ok=True)
        self.primary = RedisServer(directory / "primary")
        self.replica = replica_server(directory / "replica", self.primary.port)
        self.paused = False

    @property
    def url(self) -> str:
        return self.primary.url

    def start(self) -> Replicated:
        self.primary.start()
        with contextlib.closing(self.client(self.primary)) as c:
            c.config_set("repl-diskless-sync-delay", 0)  # 5 s by default: the first sync
        self.replica.start()
        self.wait_linked()
        return self

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(port=server.port, socket_timeout=5, decode_responses=True)

    def info(self, server: RedisServer, section: str) -> dict[str, Any]:
        with contextlib.closing(self.client(server)) as c:
            return dict(c.info(section))

    def wait_linked(self, timeout: float = 15) -> None:
        """Until the replica acknowledges a write. INFO says `state=online`
        before that: after a diskless sync the primary starts the stream on
        the replica's first REPLCONF ACK, up to a second later."""

        def acknowledged() -> bool:
            with contextlib.closing(self.client(self.primary)) as c:
                c.set("test:replication-probe", "1")
                return int(c.execute_command("WAIT", 1, 100)) >= 1

        wait_for(acknowledged, timeout, interval=0.05, message="the replica to sync")

    def pause_replica(self) -> None:
        assert self.replica.proc is not None
        os.kill(self.replica.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume_replica(self) -> None:
        if self.paused and self.replica.proc is not None:
            os.kill(self.replica.proc.pid, signal.SIGCONT)
        self.paused = False

    def promote(self) -> None:
        """The replica becomes a primary with what it has (a manual failover)."""
        with contextlib.closing(self.client(self.replica)) as c:
            c.execute_command("REPLICAOF", "NO", "ONE")

    def wait_calls(self) -> int:
        """WAIT commands the primary ran since its last CONFIG RESETSTAT."""
        stats = self.info(self.primary, "commandstats")
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))

    def reset_stats(self) -> None:
        with contextlib.closing(self.client(self.primary)) as c:
            c.config_resetstat()

    def stop(self) -> None:
        self.resume_replica()  # a stopped process cannot act on SIGTERM
        self.replica.stop()
        self.primary.stop()


def cut_replica(pair: Replicated) -> None:
    """A partition between the two: the replica drops its link and cannot
    sync again (a wrong `masterauth`: the primary refuses its AUTH), so
    the primary's writes from now on reach only its own memory."""
    with contextlib.closing(pair.client(pair.replica)) as c:
        c.config_set("masterauth", "not-the-password")
        c.execute_command("CLIENT", "KILL", "TYPE", "master")

    def cut() -> bool:
        return int(pair.info(pair.primary, "replication").get("connected_slaves", 0)) == 0

    wait_for(cut, 10, interval=0.02, message="the replica to drop its link")


@dataclass
class Failover:
    """What one run of `enqueue_through_failover` saw."""

    acknowledged: int  # enqueue calls that returned
    refused: int  # enqueue calls that raised (ReplicationTimeout, then the dead primary)
    lost: int  # acknowledged jobs the promoted replica does not have
    acknowledged_after_cut: int  # calls sent once the replica was cut off that returned


def enqueue_through_failover(
    pair: Replicated,
    app: Bananas,
    min_replicas: int,
    *,
    cut: bool,
    threads: int = 4,
    before: int = 300,
    timeout: str = "200ms",
) -> Failover:
    """Enqueue from `threads` threads; after `before` acknowledged (and, with
    `cut`, after the replica was cut off and 16 more calls were tried) SIGKILL
    the primary, promote the replica, count acknowledged jobs it lacks."""
    app.configure(
        Settings.load(
            env={
                "REDIS_URL": pair.url,
                "REDIS_MIN_REPLICAS": str(min_replicas),
                "REDIS_MIN_REPLICAS_TIMEOUT": timeout,
            }
        )
    )
    stop = threading.Event()
    cut_off = threading.Event()  # set once the primary has no replica left
    lock = threading.Lock()
    acked: list[str] = []
    tried = [0]
    refused = [0]
    acked_after_cut = [0]  # calls sent after the cut that returned

    def produce(t: int) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            job_id = f"t{t}-{i}"
            after_cut = cut_off.is_set()
            with lock:
                tried[0] += 1
            try:
                app.enqueue("record", k=job_id, _job_id=job_id)
            except BananasError:
                with lock:
                    refused[0] += 1
                continue
            with lock:
                acked.append(job_id)
                acked_after_cut[0] += after_cut

    workers = [threading.Thread(target=produce, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(acked) >= before, 30, interval=0.005, message="enqueues")
        if cut:
            cut_replica(pair)
            cut_off.set()
            with lock:
                tried_at = tried[0]
            wait_for(lambda: tried[0] >= tried_at + 16, 30, interval=0.005, message="16 calls")
        assert pair.primary.proc is not None
        pair.primary.stop(signal.SIGKILL)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    with lock:
        ids = list(acked)
    app.configure(Settings.load(env={}))
    pair.promote()
    keys = Keys("bananas")
    with contextlib.closing(pair.client(pair.replica)) as c:
        pipe = c.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(keys.job(job_id))
        present = pipe.execute()
    return Failover(
        acknowledged=len(ids),
        refused=refused[0],
        lost=sum(1 for found in present if not found),
        acknowledged_after_cut=acked_after_cut[0],
    )
