"""`bananas demo` as a user runs it: no Redis anywhere, a fresh directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = str(Path(sys.executable).parent)


def user_env() -> dict[str, str]:
    """A user's shell after `make demo`: the virtualenv was never activated."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "BANANAS_", "LOG_")) and k != "REDIS_URL"
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != VENV_BIN)
    return env


def bananas(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = user_env()
    return subprocess.run(
        [sys.executable, "-m", "bananas.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def figure(output: str, label: str) -> int:
    match = re.search(rf"^\s+{label}\s+(\d+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


def test_demo_runs_to_its_summary_on_the_embedded_broker(tmp_path: Path) -> None:
    started = time.monotonic()
    done = bananas(tmp_path, "demo", "--jobs", "60")
    wall = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert wall < 60
    db = tmp_path / ".bananas" / "demo.db"
    assert f"fresh embedded SQLite file (sqlite:///{db})" in out
    assert re.search(r"\[\s*\d+\.\ds\] high \d+ queued/\d+ running", out)  # plain progress lines
    finished = re.search(r"Finished (\d+) of (\d+) jobs in ([\d.]+) s \(([\d.]+) jobs/s", out)
    assert finished, out
    assert finished.group(1) == finished.group(2) == "60"
    assert 0 < float(finished.group(3)) < 50 and float(finished.group(4)) > 0
    assert figure(out, "completed") == 59
    assert figure(out, "retries") == 4  # 2 for the flaky payment, 2 before the dead letter
    assert figure(out, "dead letters") == 1
    assert figure(out, "delayed") == 5
    assert "charge_card retried 2x, then succeeded" in out
    assert "sync_legacy_crm: ValueError" in out
    assert "none before its delay" in out
    assert "worker exited 0, scheduler exited 0" in out
    for command in ("bananas status", "bananas dlq list", "REDIS_URL=redis://"):
        assert command in out
    # The "Try next" lines run as printed, from another folder, in a shell
    # whose PATH has no bananas on it (`make demo` never activates .venv).
    (hint,) = [line for line in out.splitlines() if " status --broker " in line]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tried = subprocess.run(
        hint.split("#")[0] + " --json",
        shell=True,
        cwd=elsewhere,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tried.returncode == 0, (hint, tried.stdout + tried.stderr)
    assert json.loads(tried.stdout)["dead"] == 1

    # The summary agrees with what the broker holds afterwards.
    url = "sqlite:///.bananas/demo.db"
    status = json.loads(bananas(tmp_path, "status", "--json", "--broker", url).stdout)
    assert (status["dead"], status["scheduled"], status["in_flight"]) == (1, 0, 0)
    assert sum(q["depth"] for q in status["queues"]) == 0
    [letter] = json.loads(bananas(tmp_path, "dlq", "list", "--json", "--broker", url).stdout)
    assert letter["name"] == "sync_legacy_crm" and "vat_id" in letter["error"]
    for log in ("demo-worker.log", "demo-scheduler.log"):
        text = (tmp_path / ".bananas" / log).read_text()
        assert '"event":"worker.stopped"' in text  # drained and stopped, not killed


def test_demo_starts_from_a_fresh_file_each_time(tmp_path: Path) -> None:
    for _ in range(2):
        done = bananas(tmp_path, "demo", "--jobs", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Finished 20 of 20 jobs" in done.stdout
        assert figure(done.stdout, "completed") == 19
