"""The image's command, outside Docker: a fresh virtualenv built by the same
script the Dockerfile runs (deploy/docker/build-venv.sh) from the same files it
copies, the example app at /app's place, the image's ENV and CMD. The worker
becomes ready against the test redis-server, runs a job of the app, answers the
image's HEALTHCHECK, and drains on the STOPSIGNAL.

(No Docker engine runs here, so `docker build` itself is not exercised; this is
everything the build and the container do, minus the container.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploytools import (
    COMPOSE_DIR,
    DEPLOY,
    EXAMPLE_APP_DIR,
    ROOT,
    compose_config,
    dockerfile_instructions,
    exec_form,
    healthcheck_command,
)
from support import free_port, wait_for

from bananas import Bananas

# Building the virtualenv downloads the dependencies (from pip's cache when warm).
pytestmark = pytest.mark.timeout(420)

INSTRUCTIONS = dockerfile_instructions()
LAST = max(i.stage for i in INSTRUCTIONS)


def _image_cmd() -> list[str]:
    (cmd,) = [exec_form(i.args) for i in INSTRUCTIONS if i.keyword == "CMD" and i.stage == LAST]
    return cmd


def _image_env(venv: Path, app: Path) -> dict[str, str]:
    """The runtime stage's ENV, with /opt/venv and /app moved to the test's dirs."""
    env: dict[str, str] = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
    for i in INSTRUCTIONS:
        if i.keyword == "ENV" and i.stage == LAST:
            for item in i.args.split():
                name, _, value = item.partition("=")
                value = value.strip('"')
                if name == "PATH":
                    assert value == "/opt/venv/bin:${PATH}"
                    continue
                env[name] = value.replace("/app", str(app))
    assert env["PYTHONPATH"] == str(app)
    return env


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(venv, app): what the Dockerfile's build stage produces, built the same way."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"  # the files the build stage COPYs, not the working tree
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "src",
        context / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    app = root / "app"
    shutil.copytree(EXAMPLE_APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PYTHON=sys.executable, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off")
    build = subprocess.run(
        ["sh", str(DEPLOY / "docker" / "build-venv.sh"), str(context), str(venv), str(app)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "bananas, version" in build.stdout
    yield venv, app


def _start(
    venv: Path, app: Path, redis_url: str, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    env = _image_env(venv, app)
    env.update(REDIS_URL=redis_url, BANANAS_APP="myproject.jobs:app", HEALTH_HOST="127.0.0.1")
    env.update(extra)
    argv = _image_cmd()
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable == str(venv / "bin" / argv[0]), "the CMD resolves inside the venv"
    with open(log, "wb") as out:
        return subprocess.Popen(
            [executable, *argv[1:]], cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"worker exited {proc.returncode}:\n{log.read_text()}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _probe(argv: list[str], venv: Path, app: Path, port: int) -> int:
    """Run a health-check command as Docker would, inside the 'container'."""
    env = _image_env(venv, app)
    env["HEALTH_PORT"] = str(port)
    assert argv[0] == "python"
    return subprocess.run(
        [str(venv / "bin" / "python"), *argv[1:]], env=env, capture_output=True, timeout=30
    ).returncode


def test_fresh_venv_holds_bananas_and_not_the_checkout(image: tuple[Path, Path]) -> None:
    venv, app = image
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bananas, uvloop; print(bananas.__file__)"],
        capture_output=True,
        text=True,
        env=_image_env(venv, app),
        cwd=app,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(venv)), out.stdout
    lua = list((venv / "lib").glob("python3*/site-packages/bananas/brokers/lua/*.lua"))
    assert lua, "package data (Lua scripts) is in the wheel"


def test_image_cmd_starts_a_ready_worker_that_runs_jobs_and_drains(
    image: tuple[Path, Path], redis_url: str, tmp_path: Path
) -> None:
    venv, app = image
    port = free_port()
    log = tmp_path / "worker.log"
    started = time.monotonic()
    proc = _start(venv, app, redis_url, log, HEALTH_PORT=str(port), WORKER_CONCURRENCY="5")
    try:
        wait_for(lambda: _ready(port, proc, log), 10, interval=0.1, message="/readyz 200")
        ready_after = time.monotonic() - started
        assert ready_after < 10

        # the image's HEALTHCHECK and the Compose files' health checks pass
        dockerfile_check = next(
            i for i in INSTRUCTIONS if i.keyword == "HEALTHCHECK" and i.stage == LAST
        )
        checks = [healthcheck_command(dockerfile_check.args)]
        config = compose_config(COMPOSE_DIR / "default.yml")
        checks.append(config["services"]["worker"]["healthcheck"]["test"][1:])
        for argv in checks:
            assert _probe(argv, venv, app, port) == 0

        # a job of the app in the image runs (send_email: async, high priority)
        client = Bananas(redis_url)
        handle = client.enqueue("send_email", {"to": "a@b.c", "subject": "hi"})
        assert handle.result(timeout=20) == {"to": "a@b.c", "subject": "hi", "status": "sent"}
        client.close()

        # STOPSIGNAL: drain and exit 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert '"worker.stopped"' in log.read_text()
        for argv in checks:
            assert _probe(argv, venv, app, port) != 0, "the health check fails once it is gone"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_same_image_runs_the_scheduler_by_environment(
    image: tuple[Path, Path], redis_url: str, tmp_path: Path
) -> None:
    venv, app = image
    port = free_port()
    log = tmp_path / "scheduler.log"
    proc = _start(venv, app, redis_url, log, HEALTH_PORT=str(port), WORKER_MODE="scheduler-only")
    try:
        wait_for(lambda: _ready(port, proc, log), 10, interval=0.1, message="/readyz 200")
        info = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'mode="scheduler-only"' in info
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
