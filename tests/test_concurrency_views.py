"""Capped work as `bananas status`, the dashboard and the metrics show it
(docs/control.md): parked jobs are waiting for a slot, with the limit and
its use ("2/2 running, 6 waiting"), not queued and not stuck."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
from apps.concurrency import app
from dashboard.dashtools import serve_app
from support import Backend, WorkerFactory, wait_for

from bananas.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_dashboard_and_metrics_show_capped_work(
    target: Backend, workers: WorkerFactory, tmp_path: Path
) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    port = free_port()
    workers.start(
        "apps.concurrency:app",
        TEST_CONC_DIR=str(counters),
        WORKER_CONCURRENCY="20",
        HEALTH_PORT=str(port),
        HEALTH_HOST="127.0.0.1",
    )
    app.configure(Settings.load())
    app.enqueue_many([app.spec("capped", ms=30_000) for _ in range(8)])  # outlast the checks

    def limits() -> list[dict[str, object]]:
        out = workers.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        found: list[dict[str, object]] = json.loads(out.stdout)["concurrency_limits"]
        return found

    expected = {"job_type": "capped", "key": None, "limit": 2, "running": 2, "waiting": 6}
    wait_for(lambda: limits() == [expected], 20, message="2 running, 6 waiting")
    text = workers.cli("status").stdout
    assert "CONCURRENCY LIMITS" in text and "2/2 running, 6 waiting" in text, text
    assert target.view.count("scheduled", "capped") == 6  # parked: not queued
    assert target.view.count("queued", "capped") == 0

    with serve_app(target.url) as dash:
        page = httpx.get(dash.url + "/", headers={"accept": "text/html"}, timeout=10)
        assert "Concurrency limits" in page.text and "2/2 running, 6 waiting" in page.text
        assert "6 waiting for a slot" in page.text
        api = httpx.get(dash.url + "/api/overview", timeout=10)
        assert api.json()["limits"] == [expected]

    def metrics() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""

    line = 'bananas_concurrency_waiting{job_type="capped",key=""} 6.0'
    body = wait_for(lambda: line in (m := metrics()) and m, 20, message="the gauges")
    assert 'bananas_concurrency_running{job_type="capped",key=""} 2.0' in body
    assert 'bananas_concurrency_limit{job_type="capped",key=""} 2.0' in body
