"""SAQ: asyncio; active jobs tracked with a heartbeat and swept (retried) when
stuck; results kept in Redis (job ttl default 600 s). One queue per worker."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import probe
from saq import Queue

URL = os.environ["BENCH_REDIS_URL"]


async def noop(ctx: dict[str, Any]) -> None:
    probe.hit("noop")


async def stamp(ctx: dict[str, Any], *, t: float) -> None:
    probe.stamp("stamp", t)


async def sleep(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.05)
    probe.hit("sleep")


queue = Queue.from_url(URL, name=os.environ.get("BENCH_QUEUE", "default"))
settings = {
    "queue": queue,
    "functions": [noop, stamp, sleep],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "10")),
}
HAS_BATCH = False


class AsyncClient:
    def __init__(self) -> None:
        self.queues: dict[str, Queue] = {}

    async def start(self) -> None:
        for name in ("default", "high", "low"):
            self.queues[name] = Queue.from_url(URL, name=name)
            await self.queues[name].connect()

    async def send(self, task: str, queue: str, t: float) -> None:
        kwargs = {"t": t} if task == "stamp" else {}
        await self.queues[queue].enqueue(task, **kwargs)

    async def close(self) -> None:
        for q in self.queues.values():
            await q.disconnect()
