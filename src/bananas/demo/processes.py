"""The demo's worker and scheduler: real `bananas` processes, logs under .bananas/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..config import Settings

DEMO_DIR = Path(".bananas")
CONCURRENCY = 10
APP = "bananas.demo_jobs:app"


class Processes:
    """The worker and scheduler processes, with their logs under .bananas/."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._files: list[IO[bytes]] = []

    def start(self, name: str, *args: str) -> None:
        log = DEMO_DIR / f"demo-{name}.log"
        out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self._files.append(out)
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which drains them in order
        )

    def exited(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def logged(self, name: str, event: str) -> bool:
        return f'"event":"{event}"' in self.logs[name].read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM (graceful drain), then SIGKILL for whatever outlives `timeout`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        for f in self._files:
            f.close()
        self._files.clear()
        return codes


def child_env(url: str, settings: Settings, work_ms: float) -> dict[str, str]:
    """The demo's own settings; the caller's worker variables must not leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "BANANAS_", "LOG_"))
        and k not in ("REDIS_URL", "CONCURRENCY", "GROUP_ID", "ENABLE_SCHEDULER")
    }
    package_root = str(Path(__file__).resolve().parents[2])
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p),
        BANANAS_BROKER_URL=url,
        BANANAS_PREFIX=settings.prefix,
        BANANAS_DEMO_WORK_MS=f"{work_ms:.0f}",
        WORKER_CONCURRENCY=str(CONCURRENCY),
        # No prefetch: "running" in the display then counts exactly the jobs
        # executing (prefetched jobs hold a lease too, and would show as running).
        WORKER_PREFETCH="0",
        GROUP_ID="demo",
        HEALTH_PORT="0",
        RETRY_BACKOFF="200ms",
        SCHEDULER_INTERVAL="200ms",
        LOG_FORMAT="json",
    )
    return env
