"""examples/flask_app under gunicorn (two pre-forked workers, the app imported
before the fork) beside `bananas worker`, on each broker: Redis, and the
embedded SQLite file shared by all the processes through an absolute URL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from exampletools import EXAMPLES, Process, WebServer, example_env, poll, start_worker
from support import RedisServer

EXAMPLE = EXAMPLES / "flask_app"


@pytest.fixture(scope="module", params=("redis", "sqlite"))
def broker_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("flask_sqlite") / "queue.db"
        return {"BANANAS_BROKER_URL": f"sqlite:///{path}"}
    server: RedisServer = request.getfixturevalue("redis_server")
    if not server.running:
        server.start()
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    return {"REDIS_URL": server.url}


@pytest.fixture(scope="module")
def logs(broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flask_app")


@pytest.fixture(scope="module")
def worker(broker_env: dict[str, str], logs: Path) -> Iterator[Process]:
    process = start_worker(EXAMPLE, "reports.jobs:app", example_env(**broker_env), logs)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def web(broker_env: dict[str, str], logs: Path) -> Iterator[WebServer]:
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "2", "--preload"]
    server = WebServer(
        [*gunicorn, "--bind", "127.0.0.1:{port}", "reports:create_app()"],
        EXAMPLE,
        example_env(**broker_env),
        logs,
    ).wait_ready("/healthz")
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]


def finished(web: WebServer, job_id: str) -> dict[str, object]:
    response = poll(
        lambda: httpx.get(f"{web.base_url}/jobs/{job_id}", timeout=5),
        lambda r: r.json()["status"] != "pending",
        timeout=15,
        message=f"job {job_id} to finish",
    )
    body: dict[str, object] = response.json()
    return body


def test_a_report_request_is_computed_by_the_worker(web: WebServer, worker: Process) -> None:
    response = httpx.post(
        f"{web.base_url}/reports", json={"title": "q3", "numbers": [1, 2, 3.5]}, timeout=5
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    done = finished(web, job_id)
    assert done["status"] == "completed", done
    assert done["result"] == {
        "title": "q3",
        "count": 3,
        "total": 6.5,
        "mean": 6.5 / 3,
        "worker_pid": worker.pid,
    }


def test_requests_on_every_gunicorn_worker_enqueue(web: WebServer, worker: Process) -> None:
    """Twelve requests at once, spread by gunicorn over its processes (which
    imported the app before forking): each enqueues, every job runs."""

    def post(i: int) -> httpx.Response:
        return httpx.post(f"{web.base_url}/reports", json={"numbers": [i]}, timeout=10)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, range(12)))
    assert [r.status_code for r in responses] == [202] * 12
    for i, response in enumerate(responses):
        result = finished(web, response.json()["job_id"])["result"]
        assert isinstance(result, dict) and result["total"] == i


def test_a_bad_request_is_refused(web: WebServer) -> None:
    response = httpx.post(f"{web.base_url}/reports", json={"numbers": "1,2"}, timeout=5)
    assert response.status_code == 400
    assert "numbers" in response.text
