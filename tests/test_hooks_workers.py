"""Lifecycle hooks and OpenTelemetry tracing across real processes, on both
brokers: the test process enqueues, a `bananas worker` process runs the jobs
(and a process-pool child for process jobs)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apps import hooked
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import Backend, WorkerFactory, both_brokers, wait_for
from tracing_support import memory_spans

from bananas import Bananas, otel
from bananas.config import Settings

pytestmark = pytest.mark.timeout(90)


@both_brokers
def test_hooks_fire_once_per_event_in_order_across_processes(
    workers: WorkerFactory, target: Backend
) -> None:
    app = hooked.app
    app.configure(Settings.load())
    try:
        ok = app.enqueue("hooked_ok", k="a").id
        flaky = app.enqueue("hooked_flaky", k="b").id
        dies = app.enqueue("hooked_dies", k="c").id
        worker = workers.start("apps.hooked:app")
        view = target.view
        wait_for(lambda: view.state(dies) == "dead", 30, message="the dying job dead-lettered")
        assert app.handle(ok).result(timeout=30) == "a"  # every run had a raising hook
        assert app.handle(flaky).result(timeout=30) == 2
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    finally:
        app.close()
        hooked.close_sinks()
    lines = target.sink.lrange("test:hooks")

    def of(job_id: str) -> list[str]:
        return [line.replace(f" {job_id}", "") for line in lines if f" {job_id} " in line]

    sent = ["before_enqueue 0 -", "after_enqueue 0 None"]
    assert of(ok) == [*sent, "before_run 1 recorder", "after_run 1 completed"]
    assert of(flaky) == [
        *sent,
        "before_run 1 recorder",
        "on_retry 1 -",
        "after_run 1 retrying",
        "before_run 2 recorder",
        "after_run 2 completed",
    ]
    assert of(dies) == [*sent, "before_run 1 recorder", "on_dead_letter 1 -", "after_run 1 dead"]
    worker_id = worker.events("worker.started")[0]["worker_id"]
    assert [line for line in lines if line.startswith("on_worker")] == [
        f"on_worker_start {worker_id} 0 -",
        f"on_worker_stop {worker_id} 0 -",
    ]
    assert lines[0].startswith("before_enqueue") and lines[-1].startswith("on_worker_stop")
    failed = {(e["hook_event"], e["job_id"]) for e in worker.events("hook.failed")}
    assert {("before_run", ok), ("after_run", flaky), ("on_dead_letter", dies)} <= failed
    assert {("on_worker_start", None), ("on_worker_stop", None)} <= failed


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with memory_spans() as exporter:
        yield exporter


@both_brokers
def test_one_trace_from_a_request_through_a_worker_and_its_process_child(
    workers: WorkerFactory, target: Backend, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    exported = tmp_path / "worker-spans.jsonl"
    client = Bananas(settings=Settings.load())
    otel.instrument(client)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        jobs = {
            name: client.enqueue(name, k=name).id for name in ("traced_async", "traced_process")
        }
        jobs["traced_fails"] = client.enqueue("traced_fails", k="f").id
    worker = workers.start("apps.traced:app", TEST_TRACE_FILE=str(exported), TEST_TRACE_PARENT="1")
    try:
        assert client.handle(jobs["traced_async"]).result(timeout=30) == "traced_async"
        child_pid = client.handle(jobs["traced_process"]).result(timeout=30)
    finally:
        client.close()

    def worker_spans() -> list[dict[str, Any]]:
        text = exported.read_text() if exported.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    wait_for(lambda: len(worker_spans()) >= 7, 30, message="7 spans from the worker")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    trace_id = f"{request.get_span_context().trace_id:032x}"
    sent = {
        s.attributes["messaging.message.id"]: f"{s.get_span_context().span_id:016x}"
        for s in spans.get_finished_spans()
        if s.name.startswith("send ") and s.attributes
    }
    assert set(sent) == set(jobs.values())
    found = worker_spans()
    assert {s["trace_id"] for s in found} == {trace_id}  # one trace, request to child
    processes = [s for s in found if s["name"].startswith("process ")]
    assert sorted(s["name"] for s in processes) == [
        "process traced_async",
        "process traced_fails",
        "process traced_fails",
        "process traced_process",
    ]
    for span in processes:
        message = span["attributes"]["messaging.message.id"]
        assert span["parent_id"] == sent[message] and span["kind"] == "CONSUMER"
        assert span["pid"] == worker.pid
    by_name = {s["name"]: s for s in found}
    process_job = by_name["process traced_process"]
    assert by_name["work traced_process"]["pid"] == child_pid != worker.pid
    assert by_name["work traced_process"]["parent_id"] == process_job["span_id"]
    assert by_name["work traced_async"]["parent_id"] == by_name["process traced_async"]["span_id"]
    failures = [s["attributes"] for s in processes if s["name"] == "process traced_fails"]
    assert sorted((a["messaging.bananas.attempt"], a["error.type"]) for a in failures) == [
        (1, "KeyError"),
        (2, "KeyError"),
    ]
    assert os.getpid() not in {s["pid"] for s in found}


def test_a_batching_worker_flushes_its_spans_when_it_stops(
    workers: WorkerFactory, target: Backend, tmp_path: Path
) -> None:
    """The worker leaves through os._exit, past the SDK's exit handler: the
    tracing hook's on_worker_stop flush is what exports the batched spans."""
    exported = tmp_path / "batched.jsonl"
    worker = workers.start("apps.traced:app", TEST_TRACE_FILE=str(exported), TEST_TRACE_BATCH="1")
    client = Bananas(settings=Settings.load())
    try:
        assert client.enqueue("traced_async", k="b").result(timeout=30) == "b"
    finally:
        client.close()
    assert not exported.exists()  # batched, not exported yet
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    names = {json.loads(line)["name"] for line in exported.read_text().splitlines()}
    assert names == {"process traced_async", "work b"}
