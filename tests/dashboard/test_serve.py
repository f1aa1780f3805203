"""`bananas dashboard`: binds loopback by default, refuses bad settings clearly."""

from __future__ import annotations

from pathlib import Path

import httpx
from dashtools import CliDashboard
from support import WorkerFactory


def test_cli_serves_on_loopback_and_says_so(redis_url: str, tmp_path: Path) -> None:
    server = CliDashboard(redis_url, tmp_path / "dash.log", BANANAS_DASHBOARD_TOKEN="cli-token-123")
    try:
        r = httpx.get(f"{server.url}/api/overview")
        assert r.status_code == 401
        ok = httpx.get(
            f"{server.url}/api/overview", headers={"authorization": "Bearer cli-token-123"}
        )
        assert ok.status_code == 200 and ok.json()["queued"] == 0
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert f"bananas dashboard on http://127.0.0.1:{server.port}/" in log
    assert "auth: token" in log
    assert "cli-token-123" not in log  # never logged


def test_cli_rejects_invalid_settings_with_one_line(workers: WorkerFactory) -> None:
    done = workers.cli("dashboard", "--port", "1", BANANAS_DASHBOARD_USER="ops")
    assert done.returncode == 2  # a configuration error, as a worker's
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "bananas: error: BANANAS_DASHBOARD_USER and BANANAS_DASHBOARD_PASSWORD go together: "
        "BANANAS_DASHBOARD_PASSWORD is not set"
    ], done.stderr
    short = workers.cli("dashboard", BANANAS_DASHBOARD_TOKEN="abc")
    scheduler = workers.cli("dashboard", ENABLE_SCHEDULER="maybe")
    assert scheduler.returncode == 2 and "ENABLE_SCHEDULER" in scheduler.stderr
    assert short.returncode == 2 and "BANANAS_DASHBOARD_TOKEN is too short" in short.stderr
    assert "Traceback" not in short.stderr


def test_cli_reports_an_app_that_does_not_load(workers: WorkerFactory) -> None:
    done = workers.cli("dashboard", BANANAS_APP="no_such_module_here:app")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("bananas: error: BANANAS_APP='no_such_module_here:app'")
    flag = workers.cli("dashboard", "--app", "no_such_module_here:app")
    assert flag.returncode == 2 and "cannot import module 'no_such_module_here'" in flag.stderr


def test_cli_lists_the_schedules_of_bananas_app(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "dash_sched_app.py").write_text(
        "from bananas import Bananas\n"
        "app = Bananas()\n"
        "@app.cron('30 4 * * *', payload={'full': True})\n"
        "def nightly_backup(full: bool) -> None: ...\n"
        "@app.periodic(every='15m')\n"
        "async def refresh_rates() -> None: ...\n"
    )
    server = CliDashboard(
        redis_url, tmp_path / "dash.log", BANANAS_APP="dash_sched_app:app", PYTHONPATH=str(tmp_path)
    )
    try:
        html = httpx.get(f"{server.url}/schedules").text
    finally:
        server.stop()
    assert 'data-schedule="nightly_backup"' in html and "cron 30 4 * * *" in html
    assert 'data-schedule="refresh_rates"' in html and "every 900s" in html
    assert "T04:30:00.000Z" in html  # the next nightly firing, in UTC
