"""Bananas: async no-op handlers on the event loop; results and leases always on."""

from __future__ import annotations

import asyncio

import probe

from bananas import Bananas

app = Bananas()  # broker from BANANAS_BROKER_URL / REDIS_URL

PRIORITY = {"default": "normal", "high": "high", "low": "low"}


@app.job()
async def noop() -> None:
    probe.hit("noop")


@app.job()
async def stamp(t: float) -> None:
    probe.stamp("stamp", t)


@app.job()
async def sleep() -> None:
    await asyncio.sleep(0.05)
    probe.hit("sleep")


TASKS = {"noop": noop, "stamp": stamp, "sleep": sleep}
HAS_BATCH = True


class Client:
    def send(self, task: str, queue: str, t: float) -> None:
        kw = {"t": t} if task == "stamp" else {}
        TASKS[task].enqueue(_priority=PRIORITY[queue], **kw)

    def send_many(self, task: str, queue: str, count: int) -> None:
        fn = TASKS[task]
        app.enqueue_many([fn.spec(_priority=PRIORITY[queue]) for _ in range(count)])

    def close(self) -> None:
        app.close()
