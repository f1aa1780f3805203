"""Helpers: start/stop a real redis-server and real `bananas worker` processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

TESTS = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.02, message: str = "condition"
) -> Any:
    """Poll `predicate` until truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class RedisServer:
    def __init__(
        self, directory: Path, port: int | None = None, *, appendonly: bool = False
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, 10, message="redis-server to start")
        client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


class WorkerProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if name is None or event.get("event") == name:
                    out.append(event)
        return out

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 20) -> WorkerProcess:
        def started() -> bool:
            exited = self.proc.poll() is not None
            if self.events("worker.started"):
                return True  # it may have died since, on purpose: the caller checks
            if exited:
                raise AssertionError(
                    f"worker exited early ({self.proc.returncode}):\n" + self.output()
                )
            return False

        try:
            wait_for(started, timeout, message="worker.started")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its output:\n{self.output()[-3000:]}") from None
        return self

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.flush()

    def stop(self) -> None:
        # The whole group (it has its own session): a process-pool child running
        # a job outlives a SIGKILLed worker and would linger past the test.
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


class WorkerFactory:
    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        self.started: list[WorkerProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "BANANAS_", "LOG_"))
        }
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "TEST_REDIS_URL": self.redis_url,
                "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
                "LOG_FORMAT": "json",
                "HEALTH_PORT": "0",
                "SCHEDULER_INTERVAL": "100ms",
                "RETRY_BACKOFF": "20ms",
            }
        )
        env.update(extra)
        return env

    def start(
        self, app: str = "apps.core:app", *args: str, wait: bool = True, **env: str
    ) -> WorkerProcess:
        n = len(self.started)
        worker = WorkerProcess(
            ["worker", "--app", app, *args], self.env(**env), self.tmp / f"worker-{n}.log"
        )
        self.started.append(worker)
        if wait:
            worker.wait_started()
        return worker

    def start_scheduler(
        self, app: str = "apps.core:app", wait: bool = True, **env: str
    ) -> WorkerProcess:
        n = len(self.started)
        process = WorkerProcess(
            ["scheduler", "--app", app], self.env(**env), self.tmp / f"scheduler-{n}.log"
        )
        self.started.append(process)
        if wait:
            process.wait_started()
        return process

    def cli(self, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bananas.cli", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def repeat_causes(self) -> list[dict[str, Any]]:
        """Events of every started process that can make a job run again: the
        message of an "each job ran once" assertion, so a failure explains itself."""
        names = {"job.retried", "job.lease_lost", "job.requeued", "job.broker_error"}
        return [e for w in self.started for e in w.events() if e.get("event") in names]

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()
