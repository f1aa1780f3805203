"""The web side: `uvicorn signups.web:api`.

An `async` endpoint enqueues with `await ...enqueue_async()` (no thread, no
blocking call on the event loop); a plain `def` endpoint, which FastAPI runs in
its thread pool, uses the sync API. The lifespan closes the app's broker
connections when the server stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from . import telemetry
from .jobs import app as jobs
from .jobs import send_welcome


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await jobs.aclose()  # the broker of the server's event loop
    # The broker the thread-pool (sync) endpoints used; close() is plain code
    # (it runs its own event loop), so not on this one.
    await asyncio.to_thread(jobs.close)


api = FastAPI(title="signups", lifespan=lifespan)
telemetry.instrument_web(api)  # no-op unless SPANS_FILE is set


class Signup(BaseModel):
    email: str
    name: str


@api.post("/signups", status_code=202)
async def sign_up(signup: Signup) -> dict[str, str]:
    # ... create the account in your database here ...
    job = await send_welcome.enqueue_async(email=signup.email, name=signup.name)
    return {"job_id": job.id}


@api.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@api.get("/jobs/{job_id}")
def job_status(job_id: str) -> dict[str, Any]:
    info = jobs.handle(job_id).info()
    if info is None:  # queued, running or unknown: no result stored yet
        return {"id": job_id, "status": "pending"}
    return {"id": job_id, "status": info.status, "result": info.value(), "error": info.error}
