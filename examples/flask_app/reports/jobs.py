"""The Bananas app, imported by the views (to enqueue) and by the worker
(`bananas worker --app reports.jobs:app`, to run the handlers).

It lives beside the Flask app, not inside it: the worker has no Flask app and
no request, and needs none. Its broker comes from the environment (REDIS_URL
or BANANAS_BROKER_URL) and is connected when first used, never at import, so
gunicorn may import this module before it forks its workers (--preload).
"""

from __future__ import annotations

import os
import statistics

from bananas import Bananas

app = Bananas()


@app.job(timeout="1m", max_retries=2)
def summarize(title: str, numbers: list[float]) -> dict[str, object]:
    """A plain function: the worker runs it in its thread pool."""
    return {
        "title": title,
        "count": len(numbers),
        "total": sum(numbers),
        "mean": statistics.fmean(numbers) if numbers else None,
        "worker_pid": os.getpid(),
    }
