"""The HTTP side: enqueue from a view, read the result from another.

Flask views are plain functions on the server's threads (or gunicorn's
workers), so they use the sync API; the app's broker connection pool is
shared by every thread of a process.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from .jobs import app as jobs
from .jobs import summarize

bp = Blueprint("reports", __name__)


@bp.post("/reports")
def create_report() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True) or {}
    numbers = body.get("numbers")
    if not isinstance(numbers, list) or not all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
    ):
        abort(400, "numbers: a list of numbers")
    job = summarize.enqueue(title=str(body.get("title", "report")), numbers=numbers)
    return {"job_id": job.id}, 202


@bp.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> dict[str, Any]:
    info = jobs.handle(job_id).info()
    if info is None:  # queued, running or unknown: no result stored yet
        return {"id": job_id, "status": "pending"}
    return {"id": job_id, "status": info.status, "result": info.value(), "error": info.error}
