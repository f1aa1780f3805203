"""Handlers for the Redis Cluster tests (tests/cluster): every run is logged
as "pid@unix_time;" under test:log:{k}, the format tests/chaos/analysis.py
reads, in a standalone Redis outside the cluster (TEST_REDIS_URL): a failover
of the cluster must not take the record of what ran with it."""

from __future__ import annotations

import os
import time

from bananas import Bananas

from .core import r

app = Bananas()
later = Bananas()  # a second app: its jobs wait until a worker of it starts
PID = str(os.getpid())


def _log_run(k: str) -> None:
    pipe = r().pipeline(transaction=False)
    pipe.hincrby("test:runs", k, 1)
    pipe.append(f"test:log:{k}", f"{PID}@{time.time():.3f};")
    pipe.execute()


@app.job(max_retries=5)
async def tick(k: str) -> None:
    _log_run(k)


@later.job(max_retries=5)
async def late(k: str) -> None:
    _log_run(k)
