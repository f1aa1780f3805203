"""examples/fastapi_app on Redis: uvicorn serving the app, `bananas worker`
beside it, a sign-up request whose welcome email the worker sends."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from exampletools import EXAMPLES, Process, WebServer, example_env, poll, start_worker
from support import RedisServer

EXAMPLE = EXAMPLES / "fastapi_app"


@pytest.fixture(scope="module")
def broker(redis_server: RedisServer) -> str:
    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fastapi_app")


@pytest.fixture(scope="module")
def worker(broker: str, logs: Path) -> Iterator[Process]:
    process = start_worker(EXAMPLE, "signups.jobs:app", example_env(REDIS_URL=broker), logs)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def web(broker: str, logs: Path) -> Iterator[WebServer]:
    command = [sys.executable, "-m", "uvicorn", "signups.web:api"]
    server = WebServer(
        [*command, "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"],
        EXAMPLE,
        example_env(REDIS_URL=broker),
        logs,
    ).wait_ready("/healthz")
    yield server
    server.stop()
    # Every request and the lifespan's clean-up (closing the app's brokers) ran
    # without an error.
    assert "Traceback" not in server.output(), server.output()[-3000:]


def job_done(web: WebServer, job_id: str) -> httpx.Response:
    return poll(
        lambda: httpx.get(f"{web.base_url}/jobs/{job_id}", timeout=5),
        lambda r: r.json()["status"] != "pending",
        timeout=15,
        message=f"job {job_id} to finish",
    )


def test_a_signup_request_enqueues_a_welcome_the_worker_sends(
    web: WebServer, worker: Process
) -> None:
    response = httpx.post(
        f"{web.base_url}/signups", json={"email": "ada@example.com", "name": "Ada"}, timeout=5
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    done = job_done(web, job_id).json()
    assert done["status"] == "completed", done
    assert done["result"]["to"] == "ada@example.com"
    assert done["result"]["subject"] == "Welcome, Ada!"
    assert done["result"]["attempt"] == 1
    # Run by the worker process, not by the web server that enqueued it.
    assert done["result"]["worker_pid"] == worker.pid
    assert [e["job_id"] for e in worker.events("job.completed")][:1] == [job_id]


def test_concurrent_async_requests_each_enqueue_one_job(web: WebServer, worker: Process) -> None:
    """The async endpoints share the server loop's broker: 20 requests at once
    give 20 distinct jobs, all run."""

    async def sign_up_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as client:
            return await asyncio.gather(
                *[
                    client.post("/signups", json={"email": f"u{i}@example.com", "name": f"U{i}"})
                    for i in range(20)
                ]
            )

    responses = asyncio.run(sign_up_all())
    assert [r.status_code for r in responses] == [202] * 20
    ids = [r.json()["job_id"] for r in responses]
    assert len(set(ids)) == 20
    for i, job_id in enumerate(ids):
        result = job_done(web, job_id).json()["result"]
        assert result["to"] == f"u{i}@example.com"


def test_an_unfinished_job_reads_as_pending(web: WebServer) -> None:
    response = httpx.get(f"{web.base_url}/jobs/no-such-job", timeout=5)
    assert response.json() == {"id": "no-such-job", "status": "pending"}
