"""One trace through the queue: an HTTP request to examples/fastapi_app, the
enqueue it makes and the worker's run of the job, read from the spans both
processes exported (SPANS_DIR switches the example's OpenTelemetry on)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from exampletools import EXAMPLES, Process, WebServer, example_env, poll, start_worker
from support import RedisServer, wait_for

EXAMPLE = EXAMPLES / "fastapi_app"


@pytest.fixture(scope="module")
def spans_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spans")


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, spans_dir: Path) -> dict[str, str]:
    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return {"REDIS_URL": redis_server.url, "SPANS_DIR": str(spans_dir)}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fastapi_tracing")


@pytest.fixture(scope="module")
def worker(env: dict[str, str], logs: Path) -> Iterator[Process]:
    process = start_worker(
        EXAMPLE, "signups.jobs:app", example_env(OTEL_SERVICE_NAME="signups-worker", **env), logs
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def web(env: dict[str, str], logs: Path) -> Iterator[WebServer]:
    command = [sys.executable, "-m", "uvicorn", "signups.web:api", "--no-access-log"]
    server = WebServer(
        [*command, "--host", "127.0.0.1", "--port", "{port}"],
        EXAMPLE,
        example_env(OTEL_SERVICE_NAME="signups-web", **env),
        logs,
    ).wait_ready("/healthz")
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]


def spans(spans_dir: Path, service: str) -> list[dict[str, Any]]:
    found = []
    for path in spans_dir.glob(f"{service}-*.jsonl"):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            span["pid"] = int(path.stem.rsplit("-", 1)[1])
            found.append(span)
    return found


def one(found: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    chosen = [s for s in found if all(s.get(k) == v for k, v in match.items())]
    assert len(chosen) == 1, f"{len(chosen)} spans match {match}: {[s['name'] for s in found]}"
    return chosen[0]


def test_a_request_its_enqueue_and_the_jobs_run_are_one_trace(
    web: WebServer, worker: Process, spans_dir: Path
) -> None:
    response = httpx.post(
        f"{web.base_url}/signups", json={"email": "ada@example.com", "name": "Ada"}, timeout=5
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    poll(
        lambda: httpx.get(f"{web.base_url}/jobs/{job_id}", timeout=5),
        lambda r: r.json()["status"] == "completed",
        timeout=15,
        message=f"job {job_id} to complete",
    )

    def process_span() -> dict[str, Any] | None:
        found = [
            s for s in spans(spans_dir, "signups-worker") if s["name"] == "process send_welcome"
        ]
        return found[0] if found else None

    processed = wait_for(process_span, 10, message="the worker's process span")
    web_spans = spans(spans_dir, "signups-web")
    request = one(web_spans, name="POST /signups", kind="SpanKind.SERVER")
    sent = one(web_spans, name="send send_welcome")

    trace_id = request["context"]["trace_id"]
    # The request is the root; the enqueue its child; the job's run the
    # enqueue's child, in the other process: one trace.
    assert request["parent_id"] is None
    assert sent["kind"] == "SpanKind.PRODUCER"
    assert sent["context"]["trace_id"] == trace_id
    assert sent["parent_id"] == request["context"]["span_id"]
    assert processed["kind"] == "SpanKind.CONSUMER"
    assert processed["context"]["trace_id"] == trace_id
    assert processed["parent_id"] == sent["context"]["span_id"]
    assert processed["pid"] == worker.pid and sent["pid"] == web.pid

    for span in (sent, processed):
        attributes = span["attributes"]
        assert attributes["messaging.system"] == "bananas"
        assert attributes["messaging.message.id"] == job_id
        assert attributes["messaging.destination.name"] == "send_welcome"
    assert processed["attributes"]["messaging.bananas.attempt"] == 1
