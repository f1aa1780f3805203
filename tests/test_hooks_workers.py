"""Lifecycle hooks across real processes, on both brokers: the test process
enqueues, a `bananas worker` process runs the jobs."""

from __future__ import annotations

import signal

import pytest
from apps import hooked
from support import Backend, WorkerFactory, both_brokers, wait_for

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
