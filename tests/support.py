"""Helpers: start/stop a real redis-server and real `bananas worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from apps.sink import Sink, open_sink

from bananas.brokers import Broker, from_url
from bananas.brokers.base import DeadInfo, JobResult

TESTS = Path(__file__).parent
BACKENDS = ("redis", "sqlite")
both_brokers = pytest.mark.parametrize("backend", BACKENDS, indirect=True)
"""Run a test once per broker: its `workers`, `target` and env follow the parameter."""
T = TypeVar("T")


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
        self,
        directory: Path,
        port: int | None = None,
        *,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args  # e.g. --replicaof (tests/replication.py)
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
            *self.extra_args,
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
    def __init__(
        self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", *args],
            env=env,
            cwd=cwd,
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
    """Starts `bananas worker` / `scheduler` processes on one broker: a Redis URL
    (the test app's sink is that Redis) or a SQLite one (give `sink_url`)."""

    def __init__(self, broker_url: str, tmp: Path, sink_url: str | None = None) -> None:
        self.broker_url = broker_url
        self.sink_url = sink_url
        self.tmp = tmp
        self.started: list[WorkerProcess] = []

    @property
    def redis_url(self) -> str:
        if not self.broker_url.startswith("redis"):
            raise AssertionError(f"this test needs Redis; the broker is {self.broker_url}")
        return self.broker_url

    @redis_url.setter
    def redis_url(self, url: str) -> None:  # a test pointing its workers at another Redis
        self.broker_url = url

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WORKER_", "BANANAS_", "LOG_", "TEST_")) and k != "REDIS_URL"
        }
        if self.broker_url.startswith("redis"):
            env.update({"REDIS_URL": self.broker_url, "TEST_REDIS_URL": self.broker_url})
        else:
            env["BANANAS_BROKER_URL"] = self.broker_url
        if self.sink_url is not None:
            env["TEST_SINK_URL"] = self.sink_url
        env.update(
            {
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
        names = {
            "job.retried",
            "job.lease_lost",
            "job.requeued",
            "job.broker_error",
            "job.settle_failed",
        }
        return [e for w in self.started for e in w.events() if e.get("event") in names]

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


class BrokerView:
    """Broker state read through the broker's public methods, from sync test
    code, on any backend (what the tests read as raw Redis keys before). It
    owns an event loop: the broker's connections belong to it."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.broker: Broker = self.run(self._open(url))

    @staticmethod
    async def _open(url: str) -> Broker:
        return from_url(url)

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def count(self, state: str, job_type: str | None = None) -> int:
        """Jobs in a state: queued, running, scheduled, completed, dead."""
        return self.run(self.broker.count_jobs(state, job_type))

    def queued(self, job_type: str) -> list[str]:
        """Ids waiting in a job type's queues, next to run first."""
        jobs = self.run(self.broker.list_jobs("queued", limit=100_000, job_type=job_type))
        return [j.id for j in jobs]

    def ready(self, priority: str, job_type: str) -> int:
        return self.run(self.broker.stats()).ready.get((priority, job_type), 0)

    def state(self, job_id: str) -> str | None:
        return self.run(self.broker.job_state(job_id))

    def dead_info(self, job_id: str) -> DeadInfo:
        info = self.run(self.broker.get_dead_info(job_id))
        assert info is not None, f"{job_id} has no dead-letter info"
        return info

    def record(self, job_id: str) -> dict[str, Any]:
        raw = self.run(self.broker.get_record(job_id))
        assert raw is not None, f"no record for {job_id}"
        data: dict[str, Any] = json.loads(raw)
        return data

    def result(self, job_id: str) -> JobResult | None:
        return self.run(self.broker.get_result(job_id))

    def results(self, job_ids: list[str]) -> list[JobResult | None]:
        out: list[JobResult | None] = []
        for start in range(0, len(job_ids), 1000):
            out += self.run(self.broker.get_results(job_ids[start : start + 1000]))
        return out

    def close(self) -> None:
        try:
            self.run(self.broker.close())
        finally:
            self.loop.close()


@dataclass
class Backend:
    """One broker for a test: its URL, the test app's sink, and a view of it."""

    name: str
    url: str
    sink_url: str
    _sink: Sink | None = None
    _view: BrokerView | None = None

    @property
    def sink(self) -> Sink:
        if self._sink is None:
            self._sink = open_sink(self.sink_url)
        return self._sink

    @property
    def view(self) -> BrokerView:
        if self._view is None:
            self._view = BrokerView(self.url)
        return self._view

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._view is not None:
            self._view.close()
