"""Handlers that report progress, one per executor: each reports 40%, waits
for the test's go (`test:go` in the sink), then floods set_progress in a
tight loop and ends on 100% "done"."""

from __future__ import annotations

import asyncio
import time

from bananas import Bananas, current_job

from .sink import sink

app = Bananas()
FLOOD = 20_000


def _report_then_wait(k: str) -> None:
    job = current_job()
    assert job is not None, "current_job() is None in the handler"
    job.set_progress(0.4, "resized 40 of 100 images")
    deadline = time.monotonic() + 60
    while sink().hget("test:go", k) is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _flood() -> None:
    job = current_job()
    assert job is not None
    for i in range(FLOOD):
        job.set_progress(i / FLOOD, f"step {i}")
    job.set_progress(1.0, "done")


@app.job(executor="async")
async def progress_async(k: str) -> str:
    await asyncio.to_thread(_report_then_wait, k)  # the context is copied into the thread
    _flood()
    return k


@app.job(executor="thread")
def progress_thread(k: str) -> str:
    _report_then_wait(k)
    _flood()
    return k


@app.job(executor="process")
def progress_process(k: str) -> str:
    _report_then_wait(k)
    _flood()
    return k


@app.job(executor="async", max_retries=0)
async def progress_then_fail(k: str) -> None:
    job = current_job()
    assert job is not None
    job.set_progress(0.7, "almost")
    raise RuntimeError(f"broke at 70% ({k})")


@app.job(max_retries=2)
async def echo(text: str) -> dict[str, int]:
    return {"length": len(text)}
