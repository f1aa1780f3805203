"""The examples' Compose files, through a real Compose v2 implementation (the
one tests/deploy uses): valid, and running the web server and the worker that
the example tests start, from one image, on one broker, with a drain-safe stop."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploytools import compose_command, compose_config, compose_env, go_duration
from exampletools import EXAMPLES, ROOT

from bananas.config import Settings

# What each example's test runs: the Compose file must run the same.
RUNS = {
    "fastapi_app": ("uvicorn signups.web:api", "signups.jobs:app"),
    "flask_app": ("gunicorn reports:create_app()", "reports.jobs:app"),
}
FILES = sorted(EXAMPLES.glob("*/compose.yml"))


def test_every_compose_file_is_checked() -> None:
    assert {p.parent.name for p in FILES} == set(RUNS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_compose_config_is_valid(path: Path) -> None:
    result = subprocess.run(
        [*compose_command(), "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"warnings from compose config: {result.stderr}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_web_and_worker_share_an_image_and_a_broker(path: Path) -> None:
    services: dict[str, Any] = compose_config(path)["services"]
    web, worker = services["web"], services["worker"]
    web_run, app = RUNS[path.parent.name]

    assert web["image"] == worker["image"] and web["build"] == worker["build"]
    assert web["build"]["args"]["APP_DIR"] == f"examples/{path.parent.name}"
    assert (ROOT / web["build"]["args"]["APP_DIR"] / "requirements.txt").is_file()
    command = " ".join(web["command"])
    assert command.startswith(web_run.split()[0]) and web_run.split()[1] in command
    assert worker["command"] == ["bananas", "worker", "--app", app]

    web_env, worker_env = web["environment"], worker["environment"]
    assert web_env["REDIS_URL"] == worker_env["REDIS_URL"] == "redis://redis:6379/0"
    settings = Settings.load(worker_env)  # a valid worker configuration
    assert go_duration(worker["stop_grace_period"]) > settings.shutdown_timeout
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert str(settings.health_port) in worker["expose"]
    # The web server's probe is its own /healthz (the example tests wait on it).
    assert "8000/healthz" in web["healthcheck"]["test"][-1]
    for service in (web, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
