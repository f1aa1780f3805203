"""Schedules for the HA scheduler test: every firing records its (deterministic) id."""

from __future__ import annotations

from bananas import Bananas, current_job

from .core import app as core_app
from .sink import sink

app = Bananas()
app.include(core_app)


@app.cron("* * * * * *")  # every second (sixth field: seconds)
def every_second() -> str:
    job = current_job()
    assert job is not None
    sink().incr("test:firings", job.id)
    return job.id
