"""The test mode (bananas.testing, the `bananas_test_mode` fixture): jobs run
in the test's process through the production codec and job runner, with
retries and delays driven by the test clock. No broker runs: BANANAS_BROKER_URL
points at a port nothing listens on, so any real broker call would fail."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apps import testmode as jobs_module
from apps.testmode import (
    again,
    always_fails,
    app,
    bad_result,
    fan_out,
    flaky,
    note,
    report,
    send_email,
    which_loop,
)

from bananas import (
    ArgumentsError,
    CancelOutcome,
    JobFailed,
    JobSpec,
    PayloadError,
    PayloadTooLarge,
    current_job,
)
from bananas.config import Settings
from bananas.errors import BananasError
from bananas.testing import TestMode
from bananas.testing_plugin import StartTestMode

pytestmark = pytest.mark.timeout(60)
BACKOFF = 2.0


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BANANAS_BROKER_URL", "redis://127.0.0.1:9/0")  # refused
    monkeypatch.delenv("REDIS_URL", raising=False)
    app.configure(Settings(retry_backoff=BACKOFF, max_payload_bytes=1024))
    jobs_module.RUNS.clear()
    jobs_module.FAILURES.clear()
    yield
    app.close()


def test_jobs_run_on_drain_and_results_read_through_the_handle(
    bananas_test_mode: StartTestMode,
) -> None:
    jobs = bananas_test_mode(app)
    email = send_email.enqueue(to="a@b.c", subject="hi")
    with pytest.raises(TimeoutError, match="it is queued; the test mode runs jobs on"):
        email.result(timeout=30)  # at once: nothing runs in the background
    assert email.info() is None and jobs_module.RUNS == []
    assert [h.id for h in jobs.drain()] == [email.id]
    assert email.result() == {"sent": True, "to": "a@b.c"}
    info = email.info()
    assert info is not None and info.status == "completed" and info.value() == email.result()
    assert asyncio.run(email.wait()) == {"sent": True, "to": "a@b.c"}
    assert current_job() is None  # the job's context stayed in its own task
    assert jobs.drain() == []


def test_what_fails_in_production_fails_in_the_test(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    with pytest.raises(PayloadError, match="not JSON-serializable"):
        send_email.enqueue(to={"a@b.c"}, subject="hi")
    with pytest.raises(PayloadTooLarge, match="over MAX_PAYLOAD_BYTES=1024"):
        send_email.enqueue(to="x" * 2000, subject="hi")
    with pytest.raises(ArgumentsError, match="'subjet' \\(did you mean 'subject'\\?\\)"):
        send_email.enqueue(to="a@b.c", subjet="hi")
    with pytest.raises(ArgumentsError, match="unexpected keyword argument 'subjet'"):
        send_email.options().enqueue(to="a@b.c", subjet="hi")  # type: ignore[call-arg]
    assert jobs.jobs() == []  # none of them was written
    # A record that skipped the enqueue check (a JobSpec made by hand, as a
    # name-only producer sends it) is refused by the runner, as a worker does.
    [unfit] = app.enqueue_many([JobSpec("send_email", {"to": "a@b.c"}, "normal")])
    unjson = bad_result.enqueue()
    jobs.drain()
    with pytest.raises(JobFailed, match="payload does not match send_email"):
        unfit.result()
    with pytest.raises(JobFailed, match="result is not JSON-serializable"):
        unjson.result()
    assert [j.state for j in jobs.jobs()] == ["dead", "dead"]
    assert jobs_module.RUNS == []


def test_a_retrying_job_is_driven_to_completion_on_the_test_clock(
    bananas_test_mode: StartTestMode,
) -> None:
    jobs = bananas_test_mode(app)
    jobs_module.FAILURES["k"] = 2
    handle = flaky.enqueue(key="k")
    jobs.drain()
    [job] = jobs.jobs("flaky")
    assert (job.state, job.attempts, job.error) == ("scheduled", 1, "ConnectionError: k: try again")
    # The production back-off: RETRY_BACKOFF x 2^(attempt-1), times a jitter in [0.5, 1).
    assert BACKOFF * 0.5 <= job.due_in < BACKOFF
    jobs.clock.advance(job.due_in - 0.001)
    assert jobs.drain() == []  # not due yet
    jobs.clock.advance(0.001)
    assert [h.id for h in jobs.drain()] == [handle.id]  # attempt 2, fails again
    [job] = jobs.jobs("flaky")
    assert job.attempts == 2 and 2 * BACKOFF * 0.5 <= job.due_in < 2 * BACKOFF
    with pytest.raises(TimeoutError, match=r"scheduled, due in .* on the test clock"):
        handle.result()
    jobs.drain(advance=True)
    assert handle.result() == 3
    assert jobs_module.RUNS == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert [e["attempt"] for e in jobs.events("job.retried")] == [1, 2]


def test_a_job_out_of_retries_is_dead_lettered_with_the_production_reason(
    bananas_test_mode: StartTestMode,
) -> None:
    jobs = bananas_test_mode(app)
    handle = always_fails.enqueue(key="disk")
    runs = jobs.drain(advance=True)
    assert [h.id for h in runs] == [handle.id, handle.id]  # max_retries=1: two attempts
    with pytest.raises(JobFailed, match="ValueError: disk is broken"):
        handle.result()
    dead = jobs.dead_info(handle.id)
    assert dead is not None and dead.reason == "failed 2 times (max_retries=1)"
    assert "raise ValueError" in dead.traceback


def test_a_delayed_job_runs_when_the_test_clock_reaches_it(
    bananas_test_mode: StartTestMode,
) -> None:
    jobs = bananas_test_mode(app)
    later = send_email.enqueue(to="later", subject="hi", _delay="10s")
    tomorrow = note.enqueue(text="tomorrow", _at=datetime.now(UTC) + timedelta(days=1))
    assert jobs.drain() == []
    jobs.clock.advance(9.99)
    assert jobs.drain() == []
    jobs.clock.advance(timedelta(milliseconds=10))
    assert [h.id for h in jobs.drain()] == [later.id]
    started = jobs.clock.now()
    assert [h.id for h in jobs.drain(advance=True)] == [tomorrow.id]
    assert jobs.clock.now() - started > 86000  # jumped, not waited
    assert tomorrow.result() == "tomorrow"


def test_higher_priority_first_then_enqueue_order(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    note.enqueue(text="low")
    send_email.enqueue(to="normal-1", subject="x")
    note.enqueue(text="high", _priority="high")
    send_email.enqueue(to="normal-2", subject="x")
    jobs.drain()
    assert [r[1] for r in jobs_module.RUNS] == ["high", "normal-1", "normal-2", "low"]


def test_jobs_enqueued_by_a_job_run_in_the_same_drain(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    fan_out.enqueue(count=4)
    assert len(jobs.drain()) == 5
    assert sorted(r[1] for r in jobs_module.RUNS) == ["u0", "u1", "u2", "u3"]
    assert jobs.jobs("send_email")[0].payload == {"to": "u0", "subject": "news"}


def test_inline_mode_runs_jobs_before_enqueue_returns(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app, inline=True)
    assert send_email.enqueue(to="a@b.c", subject="hi").result() == {"sent": True, "to": "a@b.c"}
    fan_out.enqueue(count=2)
    assert len(jobs_module.RUNS) == 3  # the job and the two it enqueued
    later = note.enqueue(text="later", _delay="1m")
    jobs_module.FAILURES["i"] = 1
    retried = flaky.enqueue(key="i")
    assert later.info() is None and retried.info() is None
    jobs.clock.advance("1m")  # inline: what falls due runs at once
    assert later.result() == "later" and retried.result() == 2


def test_async_callers_run_async_jobs_on_their_own_loop(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)

    async def collect() -> tuple[int, Any]:
        handle = await which_loop.enqueue_async()
        assert handle.info() is None
        assert len(await jobs.drain_async()) == 1
        assert current_job() is None  # the job's context stayed in its own task
        return id(asyncio.get_running_loop()), await handle.wait()

    loop_id, ran_on = asyncio.run(collect())
    assert ran_on == loop_id
    jobs.stop()
    bananas_test_mode(app, inline=True)

    async def at_enqueue() -> tuple[int, Any, Any]:
        handle = await which_loop.enqueue_async()
        sync = send_email.enqueue(to="from-async", subject="x")  # sync API inside a loop
        return id(asyncio.get_running_loop()), await handle.wait(), sync.result()

    loop_id, ran_on, sent = asyncio.run(at_enqueue())
    assert ran_on == loop_id and sent == {"sent": True, "to": "from-async"}


def test_a_job_type_the_app_does_not_run_waits(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    handle = app.enqueue("resize", path="a.png")  # by name: no handler here
    assert jobs.drain(advance=True) == []
    with pytest.raises(TimeoutError, match="no handler for job type 'resize'"):
        handle.result()
    assert jobs.jobs("resize")[0].state == "queued"


def test_a_drain_is_bounded(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    again.enqueue(n=0)
    with pytest.raises(BananasError, match="drain\\(\\) ran 5 jobs and more are due"):
        jobs.drain(limit=5)
    assert len(jobs.jobs(state="queued")) == 1


def test_process_jobs_run_in_a_thread_or_in_a_real_pool(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    handle = report.enqueue(report_id=1)
    jobs.drain()
    threaded = handle.result()
    assert threaded["pid"] == os.getpid() and threaded["thread"].startswith("bananas-job")
    pooled = bananas_test_mode(app, processes=True)
    handle = report.enqueue(report_id=2)
    pooled.drain()
    assert handle.result()["pid"] != os.getpid()


def test_stop_gives_the_app_its_brokers_back() -> None:
    before = app._brokers
    with TestMode(app) as jobs:
        assert app._brokers is not before
        send_email.enqueue(to="a", subject="b")
        assert len(jobs.jobs()) == 1
    assert app._brokers is before
    with pytest.raises(BananasError, match="already started"):
        mode = TestMode(app).start()
        try:
            mode.start()
        finally:
            mode.stop()


def test_the_sync_api_inside_a_running_loop() -> None:
    """An async test that uses the context manager and the sync drain: the
    jobs run on the test mode's own loop, from a helper thread."""

    async def main() -> Any:
        with TestMode(app) as jobs:
            handle = await send_email.enqueue_async(to="a@b.c", subject="hi")
            assert len(jobs.drain()) == 1
            return await handle.wait()

    assert asyncio.run(main()) == {"sent": True, "to": "a@b.c"}


def test_progress_reported_in_test_mode_is_read_through_the_handle(
    bananas_test_mode: StartTestMode,
) -> None:
    from apps.testmode import long_task

    jobs = bananas_test_mode(app)
    handle = long_task.enqueue(steps=4)
    assert handle.progress() is None
    jobs.drain()
    assert handle.result() == 4
    progress = handle.progress()
    assert progress is not None
    assert (progress.fraction, progress.message, progress.attempt) == (1.0, "step 4 of 4", 1)


def test_a_cancelled_job_never_runs_in_the_test_mode(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    email = send_email.enqueue(to="a@b.c", subject="hi")
    later = send_email.options(delay=60).enqueue(to="d@e.f", subject="later")
    assert email.cancel() == CancelOutcome.CANCELLED
    assert asyncio.run(later.cancel_async()) == CancelOutcome.CANCELLED
    assert jobs.drain(advance=True) == [] and jobs_module.RUNS == []
    with pytest.raises(JobFailed, match="cancelled"):
        email.result()
    assert email.cancel() == CancelOutcome.ALREADY_CANCELLED
    done = send_email.enqueue(to="g@h.i", subject="done")
    jobs.drain()
    assert done.cancel() == CancelOutcome.ALREADY_COMPLETED
    assert app.handle("nope").cancel() == CancelOutcome.UNKNOWN
