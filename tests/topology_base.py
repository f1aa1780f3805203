"""The processes under tests/topology.py: free loopback ports, bounded polls,
and one redis-server / redis-sentinel started in its own session and stopped
by its pid (its process group, so a fork child doing a BGSAVE or an AOF
rewrite goes with it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

HOST = "127.0.0.1"
T = TypeVar("T")

_taken: set[int] = set()  # ports handed out in this process, not yet bound by their server


def free_port() -> int:
    """A free loopback port, never one this process handed out before (two
    servers started back to back would otherwise race for the same one)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _taken:
            _taken.add(port)
            return port
    raise RuntimeError("no free loopback port")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "redis-tools" if name == "redis-cli" else name
        raise RuntimeError(f"{name} is not installed (Debian: apt-get install {package})")
    return path


def poll(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """`predicate()` until it returns a truthy value; AssertionError naming
    `what` after `timeout` seconds. Connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            last = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last})" if last is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


class Process:
    """One redis-server / redis-sentinel; restartable with the same arguments
    (and so the same data directory and config file)."""

    def __init__(self, args: list[str], log: Path, port: int, password: str | None = None) -> None:
        self.args = args
        self.log = log
        self.port = port
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive and self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        release(self.port)

        def up() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.args[0]} on {self.port} exited:\n{self.tail()}")
            with self.client(timeout=0.3) as c:
                return bool(c.ping())

        poll(up, timeout, f"{Path(self.args[0]).name} on port {self.port}")

    def client(self, timeout: float = 2.0, **kwargs: Any) -> redis.Redis:
        return redis.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **kwargs,
        )

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # A fork child (BGSAVE, AOF rewrite, diskless sync) shares the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def server_args(port: int, directory: Path, *extra: str) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--protected-mode",
        "yes",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
        # a replica's first sync starts at once, not after the default 5 s wait
        # for more replicas to share one transfer
        "--repl-diskless-sync-delay",
        "0",
        *extra,
    ]


def release(port: int) -> None:
    """A port handed out by free_port is now bound by its server."""
    _taken.discard(port)
