"""The jobs `bananas demo` runs: what a small web shop sends to its workers.

Each handler takes a realistic (short) time, set by BANANAS_DEMO_WORK_MS (the
mean, in milliseconds; the demo sizes it so the run lasts a few seconds).
Run them against your own broker too:

    bananas worker --app bananas.demo_jobs:app
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time

from bananas import Bananas, Priority, current_job

app = Bananas()


def _work_seconds() -> float:
    """A job's duration: the configured mean, +-50%."""
    mean_ms = float(os.environ.get("BANANAS_DEMO_WORK_MS", "100"))
    return mean_ms / 1000 * random.uniform(0.5, 1.5)


@app.job(priority=Priority.HIGH, timeout="30s")
async def send_email(to: str, subject: str) -> dict[str, str]:
    """I/O-bound: talks to a mail API (async, on the worker's event loop)."""
    await asyncio.sleep(_work_seconds())
    message_id = hashlib.sha1(f"{to}:{subject}".encode()).hexdigest()[:12]
    return {"to": to, "message_id": f"<{message_id}@demo.bananas>"}


@app.job(priority=Priority.NORMAL, timeout="30s")
def resize_image(image_id: int, width: int) -> dict[str, int]:
    """Blocking library code: runs in the worker's thread pool."""
    deadline = time.monotonic() + _work_seconds()
    digest = b""
    while time.monotonic() < deadline:  # stands in for decoding and scaling pixels
        digest = hashlib.sha256(digest + image_id.to_bytes(8, "big")).digest()
        time.sleep(0.005)
    return {"image_id": image_id, "width": width, "height": width * 3 // 4}


@app.job(priority=Priority.LOW, timeout="1m")
async def generate_report(report_id: int) -> str:
    """Slow and unhurried: the low priority runs when the others leave room."""
    await asyncio.sleep(_work_seconds() * 2)
    return f"reports/{report_id}.pdf"


@app.job(priority=Priority.HIGH, max_retries=3)
def charge_card(order_id: int, amount_cents: int) -> dict[str, object]:
    """A flaky payment gateway: times out twice, then goes through."""
    job = current_job()
    attempt = job.attempt if job else 1
    if attempt <= 2:
        raise ConnectionError(f"payment gateway timed out (attempt {attempt})")
    return {"order_id": order_id, "charged_cents": amount_cents, "attempts": attempt}


@app.job(priority=Priority.NORMAL, max_retries=2)
def sync_legacy_crm(customer_id: int) -> None:
    """Always fails: after its retries it ends in the dead-letter queue."""
    raise ValueError(f"legacy CRM rejected customer {customer_id}: field 'vat_id' is required")
