"""Cancel with real worker processes (docs/control.md): a running async,
thread (polling `current_job()`) and process job each stop within 2 s of
`cancel()` and are not retried; queued and delayed jobs cancelled never run;
a finished or unknown job answers so."""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
import redis
import wire_doc
from support import Backend, WorkerFactory, both_brokers, free_port, wait_for

from bananas import Bananas, CancelOutcome, JobFailed
from bananas.config import Settings

pytestmark = pytest.mark.timeout(180)

STOP_WITHIN_S = 2.0


def _runs(target: Backend, k: str) -> int:
    return int(target.sink.hget("test:runs", k) or 0)


def _stopped_within(app: Bananas, target: Backend, job_type: str, k: str) -> float:
    """Start a long job, cancel it while it runs; seconds until it settled."""
    handle = app.enqueue(job_type, {"k": k})
    wait_for(lambda: _runs(target, k) == 1, 30, message=f"{job_type} started")
    asked = time.monotonic()
    assert handle.cancel() == CancelOutcome.REQUESTED
    wait_for(lambda: handle.info() is not None, 10, message=f"{job_type} settled")
    took = time.monotonic() - asked
    info = handle.info()
    assert info is not None and info.status == "cancelled", info
    with pytest.raises(JobFailed, match="cancelled"):
        handle.result(timeout=1)
    assert target.view.state(handle.id) == "cancelled"
    assert target.view.record(handle.id)["cancelled_at"]
    assert handle.cancel() == CancelOutcome.ALREADY_CANCELLED
    return took


@both_brokers
@pytest.mark.parametrize("job_type", ["long_async", "polling_thread", "long_process"])
def test_a_running_job_stops_within_2s_and_is_not_retried(
    workers: WorkerFactory, target: Backend, job_type: str
) -> None:
    app = Bananas(settings=Settings.load())
    port = free_port()
    worker = workers.start("apps.cancels:app", "--concurrency", "2", HEALTH_PORT=str(port))
    took = _stopped_within(app, target, job_type, "a")
    print(f"cancel delay {job_type} on {target.name}: {took:.3f}s")
    assert took < STOP_WITHIN_S, f"{job_type} stopped {took:.2f}s after cancel()"
    # Not retried: it never runs again, and the worker keeps running jobs.
    after = app.enqueue("quick", {"k": "after"})
    assert after.result(timeout=30) == "after"
    assert _runs(target, "a") == 1
    assert not target.sink.hget("test:finished", "a")
    [event] = worker.events("job.cancelled")
    assert event["job_id"] and not worker.events("job.retried")
    wait_for(lambda: 'bananas_jobs_total{status="cancelled"} 1.0' in _metrics(port), 10)


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


@both_brokers
def test_queued_and_delayed_jobs_cancelled_never_run(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    delayed = app.enqueue("quick", {"k": "delayed"}, _delay=1.0)
    queued = app.enqueue("quick", {"k": "queued"})  # no worker yet: it waits
    assert queued.cancel() == CancelOutcome.CANCELLED
    assert delayed.cancel() == CancelOutcome.CANCELLED
    workers.start("apps.cancels:app")
    # Due after the delayed one: once it ran, the scheduler is past its time.
    late = app.enqueue("quick", {"k": "late"}, _delay=1.5)
    assert late.result(timeout=30) == "late"
    assert (_runs(target, "queued"), _runs(target, "delayed")) == (0, 0)
    for handle in (queued, delayed):
        info = handle.info()
        assert info is not None and info.status == "cancelled"
        with pytest.raises(JobFailed, match="cancelled"):
            handle.result(timeout=1)


@both_brokers
def test_cancelling_a_finished_or_unknown_job_answers_so(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.cancels:app")
    done = app.enqueue("quick", {"k": "done"})
    assert done.result(timeout=30) == "done"
    assert done.cancel() == CancelOutcome.ALREADY_COMPLETED
    assert app.handle(str(uuid.uuid4())).cancel() == CancelOutcome.UNKNOWN


@both_brokers
def test_the_cli_cancels_and_says_what_each_id_got(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    queued = app.enqueue("quick", {"k": "queued"})
    unknown = str(uuid.uuid4())
    out = workers.cli("cancel", queued.id, unknown)
    assert out.returncode == 1, out.stderr  # an unknown id
    assert out.stdout.splitlines() == [
        f"{queued.id}: cancelled before it ran: it will never run",
        f"{unknown}: unknown job (never enqueued, or its record expired)",
    ]
    again = workers.cli("cancel", "--json", queued.id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f'[{{"id":"{queued.id}","outcome":"already_cancelled"}}]'
    assert workers.cli("cancel").returncode == 2
    workers.start("apps.cancels:app")
    assert app.enqueue("quick", {"k": "marker"}).result(timeout=30) == "marker"
    assert _runs(target, "queued") == 0


def test_sdk_readers_see_a_cancelled_job_as_failed(workers: WorkerFactory, target: Backend) -> None:
    """The result hash and the record of a job cancelled while queued and of
    one stopped while running, against docs/wire-format.md and read as the
    SDKs read them (Redis: the only broker SDKs read)."""
    app = Bananas(settings=Settings.load())
    queued = app.enqueue("quick", {"k": "queued"})
    assert queued.cancel() == CancelOutcome.CANCELLED
    workers.start("apps.cancels:app")
    running = app.enqueue("long_async", {"k": "running"})
    wait_for(lambda: _runs(target, "running") == 1, 30, message="started")
    assert running.cancel() == CancelOutcome.REQUESTED
    wait_for(lambda: running.info() is not None, 10, message="settled")
    r = redis.Redis.from_url(target.url, decode_responses=True)
    try:
        for handle in (queued, running):
            data = r.hgetall(f"bananas:result:{handle.id}")
            wire_doc.check_result_hash(data)
            parsed = wire_doc.python_sdk_result(handle.id, data)
            assert (parsed["status"], parsed["error"]) == ("failed", "cancelled")
            wire_doc.go_reader_result(data)
            record = target.view.record(handle.id)
            wire_doc.check_record(record)
            wire_doc.python_sdk_job(record)
            assert (record["status"], record["error"]) == ("failed", "cancelled")
            info = handle.info()
            assert info is not None and info.status == "cancelled"  # as Bananas reads it
    finally:
        r.close()


@both_brokers
def test_a_job_cancelled_in_the_prefetch_buffer_never_starts(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    worker = workers.start("apps.cancels:app", "--concurrency", "1", WORKER_PREFETCH="4")
    busy = app.enqueue("long_async", {"k": "busy"})
    wait_for(lambda: _runs(target, "busy") == 1, 30, message="the slot is taken")
    waiting = app.enqueue("quick", {"k": "waiting"})
    wait_for(lambda: target.view.state(waiting.id) == "running", 10, message="prefetched")
    assert waiting.cancel() == CancelOutcome.REQUESTED  # leased: its worker is told
    wait_for(lambda: waiting.info() is not None, 5, message="settled")
    info = waiting.info()
    assert info is not None and info.status == "cancelled"
    assert busy.cancel() == CancelOutcome.REQUESTED
    wait_for(lambda: busy.info() is not None, 5, message="busy settled")
    assert app.enqueue("quick", {"k": "after"}).result(timeout=30) == "after"
    assert _runs(target, "waiting") == 0
    assert [e["started"] for e in worker.events("job.cancel_requested")] == [False, True]


def test_hooks_see_a_cancelled_run_end_as_cancelled(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.hooked:app")
    handle = app.enqueue("hooked_long", {"k": "x"})
    lines = lambda: [ln for ln in target.sink.lrange("test:hooks") if handle.id in ln]  # noqa: E731
    wait_for(lambda: any(ln.startswith("before_run") for ln in lines()), 30, message="ran")
    assert handle.cancel() == CancelOutcome.REQUESTED
    wait_for(lambda: any(ln.startswith("after_run") for ln in lines()), 10, message="ended")
    [end] = [ln for ln in lines() if ln.startswith("after_run")]
    assert end == f"after_run {handle.id} 1 cancelled"
    assert not any(ln.startswith(("on_retry", "on_dead_letter")) for ln in lines())
