"""Redis topologies for tests: a Redis Cluster and a Sentinel-managed primary,
built from Debian's redis-server / redis-sentinel / redis-cli on free loopback
ports. Every process is started in its own session and stopped by its pid (its
process group, so a fork child doing a BGSAVE or an AOF rewrite goes with it);
every wait is bounded.

    with start_cluster(tmp / "c") as cluster:        # 3 primaries + 3 replicas
        old = cluster.primaries()[0]
        cluster.kill(old)
        new = cluster.wait_failover(old, timeout=15)

    with start_sentinel_bed(tmp / "s") as bed:       # primary + replica + 3 sentinels
        bed.kill_primary()
        bed.wait_promoted(timeout=15)
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
import redis.cluster
from topology_base import HOST, Process, binary, free_port, poll, release, server_args
from topology_sentinel import SentinelBed, start_sentinel_bed

__all__ = ["Cluster", "Node", "SentinelBed", "start_cluster", "start_sentinel_bed"]

NODE_TIMEOUT_MS = 2000  # a replica takes over ~2-4 s after its primary dies


@dataclass(frozen=True)
class Node:
    port: int
    pid: int | None  # None once killed
    role: str  # "primary", "replica", or "down"


class Cluster:
    """A running Redis Cluster. Ports identify nodes; roles are read live (a
    failover changes them)."""

    def __init__(self, base_dir: Path, processes: list[Process], replicas_per_primary: int) -> None:
        self.base_dir = base_dir
        self._processes = processes  # filled in as they start: stop() sees every one
        self.replicas_per_primary = replicas_per_primary
        self.ids: dict[int, str] = {}

    # -- what tests read

    @property
    def processes(self) -> dict[int, Process]:
        return {p.port: p for p in self._processes}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.processes)

    @property
    def ports(self) -> list[int]:
        return list(self.processes)

    @property
    def nodes(self) -> list[Node]:
        return [Node(port, p.pid, self._role(port)) for port, p in self.processes.items()]

    def primaries(self) -> list[int]:
        """Ports of the live primaries that hold slots, in port order."""
        return sorted(port for port, slots in self.slot_counts().items() if slots > 0)

    def replica_of(self, port: int) -> int:
        """The port of a live replica of the primary on `port`."""
        primary_id = self.ids[port]
        for node in self._cluster_nodes():
            flags = node["flags"]
            if "slave" in flags and node["master"] == primary_id and "fail" not in flags:
                return int(node["port"])
        raise AssertionError(f"the primary on {port} has no live replica")

    def slot_counts(self) -> dict[int, int]:
        """Slots per live primary (by port), as the cluster itself sees them."""
        counts: dict[int, int] = {}
        for node in self._cluster_nodes():
            flags = node["flags"]
            if "master" in flags and "fail" not in flags and self.processes[node["port"]].alive:
                counts[node["port"]] = node["slots"]
        return counts

    def client(self, port: int, **kwargs: Any) -> redis.Redis:
        return self.processes[port].client(**kwargs)

    def cluster_client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        nodes = [redis.cluster.ClusterNode(HOST, p) for p in self._alive()]
        return redis.cluster.RedisCluster(startup_nodes=nodes, decode_responses=True, **kwargs)

    # -- what tests do

    def kill(self, port: int) -> None:
        """SIGKILL one node (no shutdown save, no goodbye to its replicas)."""
        self.processes[port].kill()

    def restart(self, port: int, timeout: float = 15) -> None:
        """Start a killed node again with its data and nodes.conf: it rejoins
        (a former primary comes back as a replica of the one promoted)."""
        self.processes[port].start()
        self.wait_ok(timeout)

    def wait_failover(self, old_primary_port: int, timeout: float = 20) -> int:
        """Wait until a replica of the killed primary has taken over its slots
        and the cluster is ok again on every live node; return its port."""
        old_id = self.ids[old_primary_port]
        replicas = [n["port"] for n in self._cluster_nodes() if n["master"] == old_id] or [
            p for p in self.ids if p != old_primary_port
        ]

        def promoted() -> int | None:
            for port in replicas:
                if not self.processes[port].alive:
                    continue
                with self.client(port) as c:
                    if c.execute_command("ROLE")[0] == "master" and _slots(c) > 0:
                        return port
            return None

        port = poll(promoted, timeout, f"a replica of {old_primary_port} to be promoted")
        self.wait_ok(timeout)
        return port

    def reshard(self, from_port: int, to_port: int, slots: int, timeout: float = 120) -> None:
        """Move `slots` slots (and their keys) from one primary to another, as
        an operator would: `redis-cli --cluster reshard`."""
        entry = next(p for p in self._alive())
        subprocess.run(
            [
                binary("redis-cli"),
                "--cluster",
                "reshard",
                f"{HOST}:{entry}",
                "--cluster-from",
                self.ids[from_port],
                "--cluster-to",
                self.ids[to_port],
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
                "--cluster-pipeline",
                "100",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.wait_ok(30)

    def rebalance(self, timeout: float = 120) -> None:
        entry = next(p for p in self._alive())
        subprocess.run(
            [binary("redis-cli"), "--cluster", "rebalance", f"{HOST}:{entry}", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.wait_ok(30)

    def wait_ok(self, timeout: float = 20) -> None:
        """Every live node says cluster_state:ok, knows every node, and every
        live replica's link to its primary is up, and no node sees a live
        primary without slots (a replica not yet turned into one: CLUSTER
        REPLICATE spreads by gossip)."""
        total = len(self.processes)

        def ok() -> bool:
            for port in self._alive():
                with self.client(port) as c:
                    info = c.cluster("info")
                    if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) < total:
                        return False
                    role = c.execute_command("ROLE")
                    if role[0] == "slave" and role[3] != "connected":
                        return False
                    for node in _parse_nodes(c.execute_command("CLUSTER NODES")):
                        flags = node["flags"]
                        live = not {"fail", "fail?"} & set(flags)
                        if "master" in flags and live and node["slots"] == 0:
                            return False
            return True

        poll(ok, timeout, "cluster_state:ok on every node with every replica linked")

    def flushall(self) -> None:
        """Empty every live primary (replicas follow)."""
        for port in self.primaries():
            with self.client(port) as c:
                c.flushall()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals

    def _alive(self) -> list[int]:
        return [port for port, p in self.processes.items() if p.alive]

    def _role(self, port: int) -> str:
        if not self.processes[port].alive:
            return "down"
        try:
            with self.client(port) as c:
                return "primary" if c.execute_command("ROLE")[0] == "master" else "replica"
        except redis.RedisError:
            return "down"

    def _cluster_nodes(self) -> list[dict[str, Any]]:
        """CLUSTER NODES from a live node, parsed: port, id, flags, master, slots."""
        for port in self._alive():
            try:
                with self.client(port) as c:
                    raw = c.execute_command("CLUSTER NODES")
            except redis.RedisError:
                continue
            return _parse_nodes(raw)
        raise AssertionError("no cluster node is alive")


def _slots(c: redis.Redis) -> int:
    """Slots the node behind `c` serves, by its own account."""
    for node in _parse_nodes(c.execute_command("CLUSTER NODES")):
        if "myself" in node["flags"]:
            return int(node["slots"])
    return 0


def _parse_nodes(parsed: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """redis-py's parsed CLUSTER NODES -> port, id, flags, master, slots (the
    number this node serves; slots being migrated do not count)."""
    out = []
    for address, node in parsed.items():
        slots = 0
        for entry in node["slots"]:
            start, end = int(entry[0]), int(entry[-1])
            slots += end - start + 1
        out.append(
            {
                "id": node["node_id"],
                "port": int(address.split("@")[0].rsplit(":", 1)[1]),
                "flags": node["flags"].split(","),
                "master": node["master_id"],
                "slots": slots,
            }
        )
    return out


def start_cluster(
    base_dir: Path, primaries: int = 3, replicas_per_primary: int = 1, timeout: float = 30
) -> Cluster:
    """Start `primaries * (1 + replicas_per_primary)` cluster-enabled servers and
    join them: `redis-cli --cluster create` for 3+ primaries (its minimum),
    CLUSTER ADDSLOTSRANGE / MEET / REPLICATE by hand below that."""
    base_dir.mkdir(parents=True, exist_ok=True)
    cli = binary("redis-cli")
    processes: list[Process] = []
    cluster = Cluster(base_dir, processes, replicas_per_primary)
    try:
        for _ in range(primaries * (1 + replicas_per_primary)):
            port, bus = free_port(), free_port()
            args = server_args(
                port,
                base_dir / str(port),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(base_dir / str(port) / "nodes.conf"),
                "--cluster-port",
                str(bus),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # a replica whose primary died long ago may still take over: tests
                # kill nodes on purpose and want the failover
                "--cluster-replica-validity-factor",
                "0",
            )
            process = Process(args, base_dir / f"{port}.log", port)
            process.start()
            processes.append(process)
            release(bus)
        for process in processes:
            with process.client() as c:
                cluster.ids[process.port] = str(c.execute_command("CLUSTER MYID"))
        if primaries >= 3:
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"{HOST}:{p.port}" for p in processes),
                    "--cluster-replicas",
                    str(replicas_per_primary),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
        else:
            _join_by_hand(cluster, processes, primaries, timeout)
        cluster.wait_ok(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _join_by_hand(
    cluster: Cluster, processes: list[Process], primaries: int, timeout: float
) -> None:
    heads, rest = processes[:primaries], processes[primaries:]
    share = 16384 // primaries
    for i, process in enumerate(heads):
        first = i * share
        last = 16383 if i == primaries - 1 else first + share - 1
        with process.client() as c:
            c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
            c.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    for process in processes[1:]:
        with process.client() as c:
            c.execute_command("CLUSTER MEET", HOST, processes[0].port)

    def everyone_known() -> bool:
        for process in processes:
            with process.client() as c:
                if int(c.cluster("info")["cluster_known_nodes"]) < len(processes):
                    return False
        return True

    poll(everyone_known, timeout, "every node to know every other (CLUSTER MEET)")
    for i, process in enumerate(rest):
        primary = heads[i % primaries]
        with process.client() as c:
            c.execute_command("CLUSTER REPLICATE", cluster.ids[primary.port])
