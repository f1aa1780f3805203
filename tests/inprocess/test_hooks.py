"""Lifecycle hooks in a real in-process Worker on both brokers: each event
once, in order, around enqueue and every attempt; a raising hook is logged
and loses nothing; no hook means no per-job hook work."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bananas import Bananas, BananasError
from bananas.hooks import ChildScope, Hook, Outcome, OutgoingJob, RunningJob
from bananas.logs import EventLog
from bananas.observe.status import WorkerIdentity
from bananas.worker.runtime import Worker

from . import jobs
from .conftest import Capture, Harness, Running, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)

Event = tuple[Any, ...]


class Recorder(Hook):
    """Notes every event into a list shared by several hooks (their order)."""

    def __init__(self, tag: str, events: list[Event]) -> None:
        self.tag = tag
        self.events = events

    def before_enqueue(self, job: OutgoingJob) -> None:
        job.headers[f"x-{self.tag}"] = job.id[:8]
        self.events.append((self.tag, "before_enqueue", job.id))

    def after_enqueue(self, job: OutgoingJob, error: BaseException | None) -> None:
        self.events.append((self.tag, "after_enqueue", job.id, error))

    def before_run(self, job: RunningJob) -> None:
        self.events.append((self.tag, "before_run", job.id, job.attempt, dict(job.headers)))

    def after_run(self, job: RunningJob, outcome: Outcome) -> None:
        self.events.append((self.tag, "after_run", job.id, job.attempt, outcome.status))

    def on_retry(self, job: RunningJob, outcome: Outcome) -> None:
        assert outcome.retry_in is not None and outcome.retry_in > 0
        self.events.append((self.tag, "on_retry", job.id, job.attempt))

    def on_dead_letter(self, job: RunningJob, outcome: Outcome) -> None:
        self.events.append((self.tag, "on_dead_letter", job.id, job.attempt, outcome.reason))

    def on_worker_start(self, worker: WorkerIdentity) -> None:
        self.events.append((self.tag, "on_worker_start", worker.id))

    def on_worker_stop(self, worker: WorkerIdentity) -> None:
        self.events.append((self.tag, "on_worker_stop", worker.id))


class Raising(Hook):
    """Raises in every event."""

    def _boom(self, *args: Any) -> None:
        raise RuntimeError("hook bug")

    before_enqueue = after_enqueue = before_run = after_run = _boom
    on_retry = on_dead_letter = on_worker_start = on_worker_stop = _boom


def hooked_app(harness: Harness, *hooks: Hook) -> Bananas:
    app = Bananas(harness.url, settings=harness.settings(), hooks=hooks)
    app.include(jobs.app)
    return app


async def start(harness: Harness, app: Bananas) -> Running:
    """A worker running `app` (its hooks), stopped by the harness at the end."""
    log = Capture()
    worker = Worker(app, app.settings, EventLog("info", "json", stream=log))
    running = Running(worker, asyncio.create_task(worker.run()), log)
    harness.running.append(running)
    await until(lambda: running.events("worker.started"), message="worker.started")
    return running


def of(events: list[Event], job_id: str) -> list[Event]:
    """A job's events: its enqueue's, then its runs', each in the order they
    fired. The producer and the worker are apart: an idle worker may start
    the job before the producer has read the broker's reply and run
    after_enqueue (here in one event loop, as across processes)."""
    mine = [e for e in events if e[2] == job_id]
    return sorted(mine, key=lambda e: not e[1].endswith("_enqueue"))


async def test_each_hook_fires_once_per_event_in_order(harness: Harness) -> None:
    events: list[Event] = []
    app = hooked_app(harness, Recorder("a", events), Recorder("b", events))
    running = await start(harness, app)
    [ok, flaky, dead] = [
        h.id
        for h in await app.enqueue_many_async(
            [
                app.spec("note", k="ok"),
                app.spec("flaky", k="f", failures=1),
                app.spec("always_fails", k="d", _max_retries=1),
            ]
        )
    ]
    for job_id in (ok, flaky, dead):
        await harness.result(job_id)
    await until(lambda: len(of(events, dead)) >= 16, message="the dead job's last hooks")
    assert running.events("hook.failed") == []
    headers = {"x-a": ok[:8], "x-b": ok[:8]}
    assert of(events, ok) == [
        ("a", "before_enqueue", ok),
        ("b", "before_enqueue", ok),
        ("b", "after_enqueue", ok, None),  # after_* in reverse: the first hook wraps
        ("a", "after_enqueue", ok, None),
        ("a", "before_run", ok, 1, headers),
        ("b", "before_run", ok, 1, headers),
        ("b", "after_run", ok, 1, "completed"),
        ("a", "after_run", ok, 1, "completed"),
    ]
    run_part = [e[:4] for e in of(events, flaky)[4:]]
    assert run_part == [
        ("a", "before_run", flaky, 1),
        ("b", "before_run", flaky, 1),
        ("a", "on_retry", flaky, 1),
        ("b", "on_retry", flaky, 1),
        ("b", "after_run", flaky, 1),
        ("a", "after_run", flaky, 1),
        ("a", "before_run", flaky, 2),  # the retry carries the stored headers too
        ("b", "before_run", flaky, 2),
        ("b", "after_run", flaky, 2),
        ("a", "after_run", flaky, 2),
    ]
    assert of(events, flaky)[10][4] == {"x-a": flaky[:8], "x-b": flaky[:8]}
    assert [e[4] for e in of(events, flaky) if e[1] == "after_run"] == [
        "retrying",
        "retrying",
        "completed",
        "completed",
    ]
    dead_part = [e[1] for e in of(events, dead)[4:] if e[0] == "a"]
    assert dead_part == [
        "before_run",
        "on_retry",
        "after_run",
        "before_run",
        "on_dead_letter",
        "after_run",
    ]
    assert of(events, dead)[-1][4] == "dead"
    assert of(events, dead)[-3][4] == "failed 2 times (max_retries=1)"
    assert await running.stop() == 0
    worker_id = running.worker.id
    assert [e for e in events if e[1].startswith("on_worker")] == [
        ("a", "on_worker_start", worker_id),
        ("b", "on_worker_start", worker_id),
        ("b", "on_worker_stop", worker_id),
        ("a", "on_worker_stop", worker_id),
    ]


async def test_a_raising_hook_is_logged_and_loses_no_job(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    app = hooked_app(harness, Raising(), Recorder("after", events))
    running = await start(harness, app)
    with caplog.at_level(logging.ERROR, logger="bananas.hooks"):
        ok = (await app.enqueue_async("add", a=2, b=3)).id
        flaky = (await app.enqueue_async("flaky", k="r", failures=1)).id
    assert (await harness.result(ok)).value() == 5  # before_run raised: it still ran
    assert (await harness.result(flaky)).value() == 2
    enqueue_failures = [r.getMessage() for r in caplog.records]
    assert len(enqueue_failures) == 4, enqueue_failures  # before and after, two jobs
    assert all("test_hooks.Raising" in m and "hook bug" in m for m in enqueue_failures)
    # The hook after the raising one still ran every event, headers included.
    assert [e[1] for e in of(events, ok)] == [
        "before_enqueue",
        "after_enqueue",
        "before_run",
        "after_run",
    ]
    failed = running.events("hook.failed")
    seen = {(e["hook_event"], e["job_id"]) for e in failed}
    assert {("before_run", ok), ("after_run", ok), ("on_retry", flaky)} <= seen
    assert all(e["hook"].endswith("test_hooks.Raising") for e in failed)
    assert all(e["error"] == "RuntimeError: hook bug" for e in failed)
    assert LEDGER.attempts("r") == 2  # once failing on purpose, once completing
    assert await running.stop() == 0
    assert {e["hook_event"] for e in running.events("hook.failed")} >= {
        "on_worker_start",
        "on_worker_stop",
    }


async def test_unrunnable_jobs_get_on_dead_letter_only(harness: Harness) -> None:
    events: list[Event] = []
    recorder = Recorder("a", events)
    app = hooked_app(harness, recorder)
    await start(harness, app)
    # A producer without the handlers (enqueue by name) cannot check the payload
    # at enqueue, so the worker dead-letters it unrun; its enqueue hooks still fire.
    producer = Bananas(harness.url, settings=harness.settings(), hooks=[recorder])
    bad = (await producer.enqueue_async("add", a=1)).id  # missing b
    await producer.aclose()
    unserializable = (await app.enqueue_async("unserializable")).id  # ran, then buried
    for job_id in (bad, unserializable):
        await until(lambda j=job_id: any(e[1] == "on_dead_letter" for e in of(events, j)))
    assert [e[1] for e in of(events, bad)][2:] == ["on_dead_letter"]
    assert "payload does not match add" in of(events, bad)[-1][4]
    assert [e[1] for e in of(events, unserializable)][2:] == [
        "before_run",
        "on_dead_letter",
        "after_run",
    ]
    assert of(events, unserializable)[-1][4] == "dead"


async def test_no_hook_means_no_per_job_hook_work(harness: Harness) -> None:
    plain = Worker(hooked_app(harness), harness.settings(), EventLog("info", "json"))
    assert plain.hooks is None and plain.runner.hooks is None

    class OnlyStart(Hook):
        def on_worker_start(self, worker: WorkerIdentity) -> None:
            return None

    only_start = Worker(hooked_app(harness, OnlyStart()), harness.settings(), EventLog())
    assert only_start.hooks is not None and only_start.runner.hooks is None
    await plain.broker.close()
    await only_start.broker.close()


async def test_headers_are_appended_and_records_without_them_unchanged(
    harness: Harness,
) -> None:
    class Quiet(Hook):
        def before_enqueue(self, job: OutgoingJob) -> None:
            return None

    class Tagging(Hook):
        def before_enqueue(self, job: OutgoingJob) -> None:
            job.headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
            job.headers["bad"] = 3  # type: ignore[assignment]

    plain, quiet = Bananas(harness.url), Bananas(harness.url, hooks=[Quiet()])
    specs = [plain.spec("add", a=1, b=2, _job_id="fixed")]
    jobs_plain = plain.build_jobs(specs)
    jobs_quiet = quiet.build_jobs(specs)
    sent: list[bytes] = []
    quiet.hooks.enqueue_sync(specs, jobs_quiet, lambda js: sent.extend(j.record for j in js))
    strip = {b"created_at", b"updated_at"}  # the one batch stamp differs between calls
    assert _without(sent[0], strip) == _without(jobs_plain[0].record, strip)
    assert b"headers" not in sent[0]

    tagging = Bananas(harness.url, hooks=[Tagging()])
    tagged = tagging.build_jobs(specs)
    tagging.hooks.enqueue_sync(specs, tagged, lambda js: None)
    fields = orjson.loads(tagged[0].record)
    assert fields.pop("headers") == {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert fields == orjson.loads(jobs_plain[0].record) | {
        "created_at": fields["created_at"],
        "updated_at": fields["updated_at"],
    }
    # An SDK-written record whose headers field is not an object still runs.
    await harness.start()
    raw = orjson.loads(jobs_plain[0].record) | {"headers": ["not", "an", "object"]}
    jobs_plain[0].record = orjson.dumps(raw)
    await harness.broker.enqueue(jobs_plain)
    assert (await harness.result("fixed")).value() == 3


def _without(record: bytes, names: set[bytes]) -> dict[str, Any]:
    fields: dict[str, Any] = orjson.loads(record)
    return {k: v for k, v in fields.items() if k.encode() not in names}


def test_a_hook_must_be_a_hook_with_known_events() -> None:
    with pytest.raises(BananasError, match=r"instance of a bananas\.hooks\.Hook subclass"):
        Bananas(hooks=[print])  # type: ignore[list-item]

    class Misspelt(Hook):
        def on_retries(self, job: RunningJob) -> None:
            return None

    with pytest.raises(BananasError, match=r"defines on_retries\(\), which is no event"):
        Bananas().add_hook(Misspelt())


@contextlib.contextmanager
def note_in_child(path: str) -> Iterator[None]:
    """A process scope: the child notes its pid on entering and leaving."""
    with open(path, "a") as out:
        out.write(f"enter {os.getpid()}\n")
    yield
    with open(path, "a") as out:
        out.write(f"exit {os.getpid()}\n")


def broken_scope(path: str) -> contextlib.AbstractContextManager[None]:
    raise RuntimeError("scope bug")


class Scoped(Hook):
    def __init__(self, path: str) -> None:
        self.path = path

    def process_scope(self, job: RunningJob) -> ChildScope | None:
        return (note_in_child, self.path)


class BrokenScope(Hook):
    def process_scope(self, job: RunningJob) -> ChildScope | None:
        return (broken_scope, "")


async def test_process_jobs_run_inside_the_hooks_scopes_in_their_child(
    harness: Harness, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "scope.txt"
    app = hooked_app(harness, BrokenScope(), Scoped(str(notes)))
    await start(harness, app)
    job_id = (await app.enqueue_async("in_process", n=10)).id
    result = (await harness.result(job_id, timeout=30)).value()
    assert result["sum"] == 285  # the broken scope did not fail the job
    child = result["pid"]
    assert notes.read_text().split("\n") == [f"enter {child}", f"exit {child}", ""]
    assert child != os.getpid()
    line = next(json.loads(x) for x in capfd.readouterr().out.splitlines() if "scope bug" in x)
    assert line["event"] == "hook.failed" and line["hook_event"] == "process_scope"
    assert line["hook"].endswith("test_hooks.broken_scope") and line["pid"] == child
    # A thread job gets no scope: the hooks' contextvars reach it directly.
    thread_job = (await app.enqueue_async("note_thread", k="t")).id
    assert (await harness.result(thread_job)).status == "completed"
    assert notes.read_text().count("enter") == 1
