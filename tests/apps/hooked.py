"""An app with lifecycle hooks, for real worker processes: `Recorder` notes
each event into the test sink (list `test:hooks`, one line per event:
`<event> <job id> <attempt> <detail>`), from the enqueuing test process and
from the worker alike; `Raising` raises in every event and is registered
first, so every other hook runs after a failing one."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bananas import Bananas, current_job
from bananas.hooks import Hook, Outcome, OutgoingJob, RunningJob
from bananas.observe.status import WorkerIdentity

from .sink import Sink, open_sink

_sinks: dict[str, Sink] = {}  # by URL: the test process runs one test per broker


def close_sinks() -> None:
    while _sinks:
        _sinks.popitem()[1].close()


class Recorder(Hook):
    def _note(self, event: str, job_id: str, attempt: int = 0, detail: str = "-") -> None:
        url = os.environ.get("TEST_SINK_URL") or os.environ["TEST_REDIS_URL"]
        if url not in _sinks:  # the hooks run in one thread: the event loop's
            _sinks[url] = open_sink(url)
        _sinks[url].rpush("test:hooks", f"{event} {job_id} {attempt} {detail}")

    def before_enqueue(self, job: OutgoingJob) -> None:
        job.headers["x-sent-by"] = "recorder"
        self._note("before_enqueue", job.id)

    def after_enqueue(self, job: OutgoingJob, error: BaseException | None) -> None:
        self._note("after_enqueue", job.id, detail=repr(error))

    def before_run(self, job: RunningJob) -> None:
        self._note("before_run", job.id, job.attempt, job.headers.get("x-sent-by", "-"))

    def after_run(self, job: RunningJob, outcome: Outcome) -> None:
        self._note("after_run", job.id, job.attempt, outcome.status)

    def on_retry(self, job: RunningJob, outcome: Outcome) -> None:
        self._note("on_retry", job.id, job.attempt)

    def on_dead_letter(self, job: RunningJob, outcome: Outcome) -> None:
        self._note("on_dead_letter", job.id, job.attempt)

    def on_worker_start(self, worker: WorkerIdentity) -> None:
        self._note("on_worker_start", worker.id)

    def on_worker_stop(self, worker: WorkerIdentity) -> None:
        self._note("on_worker_stop", worker.id)


class Raising(Hook):
    def _boom(self, *args: Any) -> None:
        raise RuntimeError("hook bug")

    before_enqueue = after_enqueue = before_run = after_run = _boom
    on_retry = on_dead_letter = on_worker_start = on_worker_stop = _boom


app = Bananas(hooks=[Raising()])
app.add_hook(Recorder())


@app.job()
async def hooked_ok(k: str) -> str:
    return k


@app.job(max_retries=1)
def hooked_flaky(k: str) -> int:
    job = current_job()
    assert job is not None
    if job.attempt == 1:
        raise RuntimeError("the first attempt fails on purpose")
    return job.attempt


@app.job(max_retries=0)
async def hooked_dies(k: str) -> None:
    raise ValueError("dies on purpose")


@app.job()
async def hooked_long(k: str) -> str:
    """Runs until it is cancelled (tests/test_cancel.py)."""
    await asyncio.sleep(60)
    return k
