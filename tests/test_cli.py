"""The `bananas` command: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from support import WorkerFactory, wait_for

from bananas import Bananas


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["worker"],
        ["scheduler"],
        ["enqueue"],
        ["status"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "replay"],
        ["dlq", "delete"],
    ],
)
def test_help(workers: WorkerFactory, command: list[str]) -> None:
    out = workers.cli(*command, "--help")
    assert out.returncode == 0 and "Usage:" in out.stdout


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["worker", "--app", "apps.core:app", "--concurrency", "0"], {}, "between 1 and 1000"),
        (["worker", "--app", "apps.core:app"], {"WORKER_MODE": "turbo"}, "WORKER_MODE"),
        (["worker", "--app", "nope.module:app"], {}, "cannot import module"),
        (["worker", "--app", "apps.core:nothing"], {}, "has no 'nothing'"),
        (["worker"], {}, "no app given"),
        (
            [
                "worker",
                "--app",
                "apps.core:app",
                "--mode",
                "job-specialized",
                "--job-types",
                "add,resize",
            ],
            {},
            "resize with no handler",
        ),
        (["enqueue", "add", "--json", "[1]"], {}, "must be a JSON object"),
        (["enqueue", "add", "--json", "{"], {}, "not valid JSON"),
        (["enqueue", "add", "--delay", "soon"], {}, "_delay"),
        (["dlq", "replay"], {}, "give job ids"),
    ],
)
def test_errors_are_one_line_exit_2(
    workers: WorkerFactory, args: list[str], env: dict[str, str], fragment: str
) -> None:
    out = workers.cli(*args, **env)
    assert out.returncode == 2, out.stderr
    assert fragment in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WORKER_MODE": "turbo"}, "WORKER_MODE"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "5000"}, "WORKER_CONCURRENCY"),
        ({"CONCURRENCY": "-3"}, "CONCURRENCY"),
        ({"WORKER_PRIORITIES": "high,urgent"}, "WORKER_PRIORITIES"),
        ({"WORKER_MODE": "specialized"}, "WORKER_PRIORITIES"),
        ({"WORKER_MODE": "job-specialized"}, "WORKER_JOB_TYPES"),
        ({"WORKER_MODE": "job-specialized", "WORKER_JOB_TYPES": " , "}, "WORKER_JOB_TYPES"),
        ({"WORKER_MODE": "job-specialized", "WORKER_JOB_TYPES": "nope"}, "WORKER_JOB_TYPES"),
        ({"WORKER_TYPE": "nope"}, "WORKER_JOB_TYPES"),
        ({"SCHEDULER_INTERVAL": "10ms"}, "SCHEDULER_INTERVAL"),
        ({"SCHEDULER_INTERVAL": "5m"}, "SCHEDULER_INTERVAL"),
        ({"JOB_TIMEOUT": "a while"}, "JOB_TIMEOUT"),
        ({"SHUTDOWN_TIMEOUT": "-1s"}, "SHUTDOWN_TIMEOUT"),
        ({"ENABLE_SCHEDULER": "perhaps"}, "ENABLE_SCHEDULER"),
        ({"WORKER_PRIORITY_POLICY": "random"}, "WORKER_PRIORITY_POLICY"),
        ({"WORKER_PRIORITY_WEIGHTS": "high=1"}, "WORKER_PRIORITY_WEIGHTS"),
        ({"WORKER_CONCURRENCY": "4", "CONCURRENCY": "8"}, "CONCURRENCY"),
        ({"WORKER_JOB_TYPES": "add", "WORKER_TYPE": "cpu"}, "WORKER_TYPE"),
        ({"GROUP_ID": "two words"}, "GROUP_ID"),
        ({"HEALTH_PORT": "70000"}, "HEALTH_PORT"),
        ({"MAX_RETRIES": "many"}, "MAX_RETRIES"),
    ],
)
def test_invalid_worker_configuration(
    workers: WorkerFactory, env: dict[str, str], variable: str
) -> None:
    out = workers.cli("worker", "--app", "apps.core:app", **env)
    assert out.returncode == 2, out.stderr
    assert variable in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_broker_is_exit_1(workers: WorkerFactory) -> None:
    out = workers.cli("status", REDIS_URL="redis://127.0.0.1:1/0")
    assert out.returncode == 1
    assert "unreachable" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_enqueue_status_and_dlq(workers: WorkerFactory, r: redis.Redis) -> None:
    out = workers.cli("enqueue", "add", "--json", '{"a": 1, "b": 2}', "--priority", "high")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert r.lrange("bananas:ready:high:add", 0, -1) == [job_id]
    status = json.loads(workers.cli("status", "--json").stdout)
    assert {"priority": "high", "job_type": "add", "depth": 1} in status["queues"]
    text = workers.cli("status").stdout
    assert "high       1" in text

    w = workers.start(MAX_RETRIES="0")
    out = workers.cli("enqueue", "add", "--json", '{"a": 1, "b": 2}', "--wait", "10")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[1])["result"] == 3
    out = workers.cli("enqueue", "broken_until_fixed", "--json", '{"k": "z"}', "--wait", "10")
    assert out.returncode == 1
    dead = json.loads(workers.cli("dlq", "list", "--json").stdout)
    assert len(dead) == 1 and "broken until" in dead[0]["error"]
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    out = workers.cli("dlq", "replay", "--all")
    assert out.returncode == 0 and "replayed 1 of 1" in out.stdout
    assert r.llen("bananas:ready:normal:broken_until_fixed") == 1
    out = workers.cli("dlq", "delete", "no-such-id")
    assert out.returncode == 1 and "not in the dead-letter queue" in out.stderr
    wait_for(
        lambda: r.llen("bananas:ready:normal:broken_until_fixed") == 1, 1, message="still queued"
    )


def test_worker_outlives_a_closed_log_pipe(workers: WorkerFactory, redis_url: str) -> None:
    """`bananas worker ... | head -n 2`: once the reader is gone every log write
    fails (EPIPE). Jobs must still complete and SIGTERM must still stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas.cli", "worker", "--app", "apps.core:app"],
        env=workers.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = Bananas(redis_url)
    try:
        assert proc.stdout is not None
        head = [proc.stdout.readline() for _ in range(2)]  # what `head -n 2` reads
        assert all(head), head
        proc.stdout.close()
        # Far more log lines than a pipe buffer and the stream's own buffer hold,
        # so writes hit the closed pipe while these jobs run.
        handles = app.enqueue_many([("add", {"a": i, "b": 1}) for i in range(400)])
        deadline = time.monotonic() + 30
        for i, handle in enumerate(handles):
            assert handle.result(timeout=max(0.1, deadline - time.monotonic())) == i + 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        app.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


BROKEN_APPS = {
    # module source, what the one line must say (besides file:line)
    "syntax": ("from bananas import Bananas\napp = Bananas()\ndef f(:\n    pass\n", 3),
    "executor": (
        "from bananas import Bananas\napp = Bananas()\n\n"
        "@app.job(executor='async')\ndef f() -> None:\n    pass\n",
        4,
    ),
    "dependency": ("import no_such_dependency_here\n", 1),
    "raises": ("x = 1\nraise RuntimeError('config missing:\\nDATABASE_URL')\n", 2),
}


def write_broken_apps(directory: Path) -> str:
    package = directory / "brokenapps"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, (source, _) in BROKEN_APPS.items():
        (package / f"{name}.py").write_text(source)
    return str(directory)


@pytest.mark.parametrize("command", ["worker", "scheduler"])
@pytest.mark.parametrize("module", sorted(BROKEN_APPS))
def test_app_that_fails_to_import_is_one_line_exit_2(
    workers: WorkerFactory, tmp_path: Path, module: str, command: str
) -> None:
    path = write_broken_apps(tmp_path)
    env = workers.env()
    out = workers.cli(
        command, "--app", f"brokenapps.{module}:app", PYTHONPATH=f"{path}:{env['PYTHONPATH']}"
    )
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    line = BROKEN_APPS[module][1]
    assert f"{tmp_path}/brokenapps/{module}.py:{line}" in out.stderr, out.stderr
