"""Run an example project as a user would: its web server and `bananas worker`
as real processes started in the example's directory, on free loopback ports,
and drive them over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# What the test run's environment must not hand the example processes: they
# are configured only by what each test passes.
_LEAKS = ("BANANAS_", "WORKER_", "LOG_", "TEST_", "OTEL_", "DJANGO_", "FLASK_")
_LEAK_NAMES = ("REDIS_URL", "SPANS_DIR", "PYTHONPATH")


def example_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKS)}
    for name in _LEAK_NAMES:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def bananas_command() -> list[str]:
    """The `bananas` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "bananas"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bananas.cli"]


class Process:
    """One long-running process of an example, output to a log file, in its own
    session so stop() ends whatever it started (uvicorn's or a pool's children)."""

    def __init__(self, args: list[str], cwd: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.args[0]} exited ({self.proc.returncode}):\n{self.output()[-3000:]}"
            )

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines (LOG_FORMAT=json) of one event."""
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("event") == name:
                        found.append(event)
        return found

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def start_worker(
    example: Path, app: str, env: Mapping[str, str], log_dir: Path, timeout: float = 30
) -> Process:
    """`bananas worker --app APP` in the example's directory, up when it logged
    worker.started."""
    worker_env = {"LOG_FORMAT": "json", "HEALTH_PORT": "0", **env}
    worker = Process(
        [*bananas_command(), "worker", "--app", app],
        example,
        worker_env,
        log_dir / f"worker-{example.name}.log",
    )

    def started() -> bool:
        worker.check_alive()
        return bool(worker.events("worker.started"))

    try:
        wait_for(started, timeout, interval=0.05, message=f"the {example.name} worker to start")
    except AssertionError:
        worker.stop()
        raise
    return worker


class WebServer(Process):
    """A web server command given a free port ({port} in its arguments)."""

    def __init__(self, args: list[str], cwd: Path, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [a.replace("{port}", str(self.port)) for a in args]
        super().__init__(args, cwd, env, log_dir / f"web-{cwd.name}.log")

    def wait_ready(self, path: str, status: int = 200, timeout: float = 30) -> WebServer:
        """Up when `path` answers with `status` (the Compose file's health check
        probes the same path)."""

        def answers() -> bool:
            self.check_alive()
            try:
                response = httpx.get(self.base_url + path, timeout=2)
            except httpx.TransportError:
                return False
            assert response.status_code == status, f"GET {path}: {response.status_code}"
            return True

        try:
            wait_for(answers, timeout, interval=0.05, message=f"{self.args[0]} to answer")
        except AssertionError:
            self.stop()
            raise
        return self


def poll(
    fetch: Callable[[], httpx.Response],
    done: Callable[[httpx.Response], bool],
    timeout: float,
    message: str,
) -> httpx.Response:
    """Request until `done(response)`; fail after `timeout`, showing the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        response = fetch()
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message}; "
                f"last answer {response.status_code}: {response.text[:500]}"
            )
        time.sleep(0.05)
