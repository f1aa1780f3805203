"""Worker and client processes: started in their own session, always bounded in time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from .adapters import Adapter, WorkerSpec
from .adapters.base import BENCH

APPS = BENCH / "apps"


class BenchError(Exception):
    """A library failed a workload (recorded, never fatal to the run)."""


def base_env(
    redis_url: str, extra: dict[str, str] | None = None, src: Path | None = None
) -> dict[str, str]:
    """Environment of every worker and client; `src` (a snapshot of src/) goes first on
    sys.path so the Bananas measured is that snapshot, not the live working tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))}
    path = [str(APPS)] + ([str(src)] if src is not None else [])
    env |= {
        "PYTHONPATH": os.pathsep.join(path),
        "BENCH_REDIS_URL": redis_url,
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    return env | (extra or {})


class Worker:
    """One worker command (its whole process group is stopped at the end)."""

    def __init__(self, spec: WorkerSpec, env: dict[str, str], log: Path) -> None:
        argv = [a.replace("{redis_url}", env["BENCH_REDIS_URL"]) for a in spec.argv]
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env | spec.env,
                cwd=APPS,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.time()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of every process in the worker's process group."""
        total = 0
        for pid in _group_pids(self.proc.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def stop(self, grace: float = 3.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived the parent
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-1200:]


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def run_client(
    adapter: Adapter, env: dict[str, str], args: list[str], timeout: float
) -> dict[str, Any]:
    """Run `client.py` in the library's venv; return its JSON line."""
    argv = [str(adapter.python), str(APPS / "client.py"), adapter.name.split("@")[0], *args]
    try:
        done = subprocess.run(
            argv, env=env, cwd=APPS, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"client {' '.join(args[:1])} timed out after {timeout:.0f}s") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise BenchError(f"client failed: {' | '.join(err[-4:])[-800:]}")
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if "error" in out:
        raise BenchError(str(out["error"]))
    return dict(out)


class Client:
    """A client started in the background (the priority workload's high-job sender)."""

    def __init__(self, adapter: Adapter, env: dict[str, str], args: list[str]) -> None:
        argv = [str(adapter.python), str(APPS / "client.py"), adapter.name.split("@")[0], *args]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=APPS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"client timed out after {timeout:.0f}s") from None
        if self.proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise BenchError(f"client failed: {' | '.join(lines[-4:])[-800:]}")
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
