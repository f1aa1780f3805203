"""OpenTelemetry through the queue (bananas.otel), in a real in-process
Worker on both brokers, spans read from the SDK's InMemorySpanExporter; a
process-executor job's child spans from the file its child exports to."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apps import traced
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_support import memory_spans

from bananas import Bananas, BananasError, otel
from bananas.logs import EventLog
from bananas.worker.runtime import Worker

from .conftest import Capture, Harness, Running, until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with memory_spans() as exporter:
        yield exporter


def traced_app(harness: Harness, **options: Any) -> Bananas:
    app = Bananas(harness.url, settings=harness.settings())
    app.include(traced.app)  # the handlers only: hooks are the app's own
    otel.instrument(app, **options)
    return app


async def start(harness: Harness, app: Bananas) -> Running:
    log = Capture()
    worker = Worker(app, app.settings, EventLog("info", "json", stream=log))
    running = Running(worker, asyncio.create_task(worker.run()), log)
    harness.running.append(running)
    await until(lambda: running.events("worker.started"), message="worker.started")
    return running


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def wait_spans(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[Any]:
    await until(lambda: len(named(exporter, name)) >= count, message=f"{count} {name!r} spans")
    return named(exporter, name)


def ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


async def test_send_and_process_spans_are_linked(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    app = traced_app(harness)
    running = await start(harness, app)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        job_id = (await app.enqueue_async("traced_async", k="a")).id
    assert (await harness.result(job_id)).value() == "a"
    [send] = named(spans, "send traced_async")
    [process] = await wait_spans(spans, "process traced_async")
    [work] = named(spans, "work a")
    request_trace = request.get_span_context().trace_id
    assert send.kind is SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert ids(send)[0] == request_trace
    record = await harness.record(job_id)
    traceparent = record["headers"]["traceparent"]
    assert traceparent.startswith(f"00-{request_trace:032x}-{ids(send)[1]:016x}-")
    # Link mode (the default): a new trace, linked to the send span.
    assert process.kind is SpanKind.CONSUMER and process.parent is None
    assert ids(process)[0] != request_trace
    assert [(link.context.trace_id, link.context.span_id) for link in process.links] == [ids(send)]
    assert work.parent is not None and work.parent.span_id == ids(process)[1]
    assert dict(send.attributes or {}) == {
        "messaging.system": "bananas",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "traced_async",
        "messaging.message.id": job_id,
        "messaging.bananas.priority": "normal",
    }
    assert dict(process.attributes or {}) == {
        "messaging.system": "bananas",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "traced_async",
        "messaging.message.id": job_id,
        "messaging.client.id": running.worker.id,
        "messaging.bananas.attempt": 1,
        "messaging.bananas.priority": "normal",
        "messaging.bananas.outcome": "completed",
    }
    assert process.status.status_code is StatusCode.UNSET


async def test_parent_mode_makes_one_trace_through_a_thread_job(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    app = traced_app(harness, parent=True)
    await start(harness, app)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        job_id = (await app.enqueue_async("traced_thread", k="t")).id
    await harness.result(job_id)
    [send] = named(spans, "send traced_thread")
    [process] = await wait_spans(spans, "process traced_thread")
    [work] = named(spans, "work t")
    trace_id = request.get_span_context().trace_id
    assert {ids(s)[0] for s in (send, process, work)} == {trace_id}
    assert process.parent is not None and process.parent.span_id == ids(send)[1]
    assert process.links == ()
    assert work.parent is not None and work.parent.span_id == ids(process)[1]  # in its thread


async def test_failed_attempts_carry_error_type_and_attempt(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    app = traced_app(harness)
    await start(harness, app)
    job_id = (await app.enqueue_async("traced_fails", k="f")).id  # max_retries=1
    first, second = await wait_spans(spans, "process traced_fails", 2)
    [send] = named(spans, "send traced_fails")
    for span, attempt, outcome in ((first, 1, "retrying"), (second, 2, "dead")):
        attributes = dict(span.attributes or {})
        assert attributes["messaging.bananas.attempt"] == attempt
        assert attributes["messaging.bananas.outcome"] == outcome
        assert attributes["error.type"] == "KeyError"
        assert attributes["messaging.message.id"] == job_id
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
        assert [link.context.span_id for link in span.links] == [ids(send)[1]]  # both


async def test_process_job_spans_are_exported_from_the_child(
    harness: Harness,
    spans: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exported = tmp_path / "child-spans.jsonl"
    monkeypatch.setenv("TEST_TRACE_FILE", str(exported))  # read by the spawned child
    app = traced_app(harness)
    await start(harness, app)
    job_id = (await app.enqueue_async("traced_process", k="p")).id
    child_pid = (await harness.result(job_id, timeout=30)).value()
    [process] = await wait_spans(spans, "process traced_process")
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    [work] = [line for line in lines if line["name"] == "work p"]
    assert work["pid"] == child_pid
    assert work["trace_id"] == f"{ids(process)[0]:032x}"
    assert work["parent_id"] == f"{ids(process)[1]:016x}"


async def test_an_explicit_provider_and_records_without_context(harness: Harness) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Bananas(harness.url, settings=harness.settings())
    app.include(traced.app)
    hook = otel.instrument(app, tracer_provider=provider)
    assert otel.instrument(app, tracer_provider=provider) is hook  # once per app
    with pytest.raises(BananasError, match="instrumented already with parent=False"):
        otel.instrument(app, parent=True)
    await start(harness, app)
    plain = Bananas(harness.url, settings=harness.settings())  # no tracing: no headers
    job_id = (await plain.enqueue_async("traced_async", k="x")).id
    await harness.result(job_id)
    assert "headers" not in await harness.record(job_id)
    [process] = await wait_spans(exporter, "process traced_async")
    assert process.parent is None and process.links == ()
    assert named(exporter, "send traced_async") == []
    await plain.aclose()


def test_bananas_never_imports_opentelemetry_and_names_the_extra() -> None:
    probe = (
        "import sys, bananas, bananas.worker.runtime\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import bananas.otel\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "bananas.otel needs OpenTelemetry: pip install 'bananas[otel]'" in done.stderr
