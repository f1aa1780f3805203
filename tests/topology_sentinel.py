"""A primary, its replica and three sentinels (tests/topology.py re-exports it)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from topology_base import HOST, Process, binary, free_port, poll, server_args

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000  # subjectively down after 1 s
FAILOVER_TIMEOUT_MS = 3000


class SentinelBed:
    """A primary, one replica and three sentinels (quorum 2) watching it as
    `mymaster`. `password` protects both servers (requirepass/masterauth);
    `sentinel_password` the sentinels themselves."""

    def __init__(
        self,
        base_dir: Path,
        servers: list[Process],
        sentinels: list[Process],
        password: str | None,
        sentinel_password: str | None,
    ) -> None:
        self.base_dir = base_dir
        self._servers = servers  # filled in as they start: stop() sees every one
        self.sentinels = sentinels
        self.password = password
        self.sentinel_password = sentinel_password
        self.primary_port = servers[0].port if servers else 0

    @property
    def servers(self) -> dict[int, Process]:
        return {p.port: p for p in self._servers}

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{hosts}/{SERVICE}{query}"

    @property
    def replica_port(self) -> int:
        return next(p for p in self.servers if p != self.primary_port)

    def client(self, port: int | None = None) -> redis.Redis:
        """A direct client to a server (the current primary by default)."""
        return self.servers[port or self.primary_port].client()

    def sentinel_client(self, i: int = 0) -> redis.Redis:
        return self.sentinels[i].client()

    def kill_primary(self) -> int:
        """SIGKILL the current primary; return its port."""
        port = self.primary_port
        self.servers[port].kill()
        return port

    def wait_promoted(self, timeout: float = 20) -> int:
        """Wait until every live sentinel names a new primary and that server
        says it is one; return its port."""
        old = self.primary_port

        def promoted() -> int | None:
            answers = set()
            for s in self.sentinels:
                if s.alive:
                    with s.client() as c:
                        _host, port = c.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)
                        answers.add(int(port))
            if len(answers) != 1:
                return None
            (port,) = answers
            if port == old or port not in self.servers or not self.servers[port].alive:
                return None
            with self.servers[port].client() as c:
                return port if c.execute_command("ROLE")[0] == "master" else None

        self.primary_port = poll(promoted, timeout, f"the sentinels to promote a replica of {old}")
        return self.primary_port

    def restart(self, port: int, timeout: float = 15) -> None:
        """Start a killed server again; the sentinels turn it into a replica."""
        self.servers[port].start(timeout)

    def wait_ready(self, timeout: float = 20) -> None:
        """Every sentinel sees the primary, the other two sentinels and a
        replica whose link is up: a failover can happen from now on."""

        def ready() -> bool:
            for s in self.sentinels:
                with s.client() as c:
                    raw = c.execute_command("SENTINEL MASTER", SERVICE)
                    info = (
                        dict(zip(raw[::2], raw[1::2], strict=True))
                        if isinstance(raw, list)
                        else raw
                    )
                    if int(info["num-other-sentinels"]) < len(self.sentinels) - 1:
                        return False
                    if int(info["num-slaves"]) < len(self.servers) - 1:
                        return False
                    if "s_down" in info["flags"] or "o_down" in info["flags"]:
                        return False
            with self.client(self.replica_port) as c:
                role = c.execute_command("ROLE")
                return bool(role[0] == "slave" and role[3] == "connected")

        poll(ready, timeout, "the sentinels to see the primary, its replica and each other")

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers.values()]:
            process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_sentinel_bed(
    base_dir: Path,
    password: str | None = None,
    sentinel_password: str | None = None,
    timeout: float = 20,
) -> SentinelBed:
    base_dir.mkdir(parents=True, exist_ok=True)
    auth: list[str] = ["--requirepass", password, "--masterauth", password] if password else []
    servers: list[Process] = []
    sentinels: list[Process] = []
    bed = SentinelBed(base_dir, servers, sentinels, password, sentinel_password)
    try:
        primary_port = free_port()
        primary = Process(
            server_args(primary_port, base_dir / str(primary_port), *auth),
            base_dir / f"{primary_port}.log",
            primary_port,
            password,
        )
        primary.start()
        servers.append(primary)
        replica_port = free_port()
        replica = Process(
            server_args(
                replica_port,
                base_dir / str(replica_port),
                *auth,
                "--replicaof",
                HOST,
                str(primary_port),
            ),
            base_dir / f"{replica_port}.log",
            replica_port,
            password,
        )
        replica.start()
        servers.append(replica)
        for _ in range(3):
            port = free_port()
            conf = base_dir / f"sentinel-{port}.conf"
            lines = [
                f"port {port}",
                f"bind {HOST}",
                "protected-mode yes",
                f"dir {base_dir}",
                f"sentinel monitor {SERVICE} {HOST} {primary_port} 2",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {SERVICE} 1",
            ]
            if password:
                lines.append(f"sentinel auth-pass {SERVICE} {password}")
            if sentinel_password:
                lines += [
                    f"requirepass {sentinel_password}",
                    f"sentinel sentinel-pass {sentinel_password}",
                ]
            conf.write_text("\n".join(lines) + "\n")  # sentinel rewrites it: one file each
            process = Process(
                [binary("redis-sentinel"), str(conf)],
                base_dir / f"sentinel-{port}.log",
                port,
                sentinel_password,
            )
            process.start()
            sentinels.append(process)
        bed.primary_port = primary_port
        bed.wait_ready(timeout)
    except BaseException:
        bed.stop()
        raise
    return bed
