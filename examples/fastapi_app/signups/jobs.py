"""The Bananas app, imported by both sides:

- the web process (signups.web) enqueues through it;
- the worker runs its handlers: `bananas worker --app signups.jobs:app`.

Keep it free of FastAPI imports: the worker never needs the web framework.
The broker comes from the environment (REDIS_URL or BANANAS_BROKER_URL),
read when first used, so importing this module opens no connection.
"""

from __future__ import annotations

import os

from bananas import Bananas, current_job

from . import telemetry

app = Bananas()
telemetry.configure(app)  # no-op unless SPANS_FILE is set (see telemetry.py)


@app.job(priority="high", timeout="30s", max_retries=5)
async def send_welcome(email: str, name: str) -> dict[str, object]:
    """Stand-in for a call to a mail provider (I/O-bound, so `async`)."""
    job = current_job()
    return {
        "to": email,
        "subject": f"Welcome, {name}!",
        "attempt": job.attempt if job else None,
        "worker_pid": os.getpid(),
    }
