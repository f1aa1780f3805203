"""arq: asyncio; jobs stay in the queue until done (re-run if the worker dies
after their in-progress key expires); results kept (keep_result default 3600 s).
poll_delay lowered from its 0.5 s default (see bench/README.md)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import probe
from arq import create_pool
from arq.connections import RedisSettings

URL = os.environ["BENCH_REDIS_URL"]
QUEUES = {"default": "arq:queue", "high": "arq:high", "low": "arq:low"}


async def noop(ctx: dict[str, Any]) -> None:
    probe.hit("noop")


async def stamp(ctx: dict[str, Any], t: float) -> None:
    probe.stamp("stamp", t)


async def sleep(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.05)
    probe.hit("sleep")


class WorkerSettings:
    functions = [noop, stamp, sleep]  # noqa: RUF012 (arq's documented shape)
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))
    queue_name = QUEUES[os.environ.get("BENCH_QUEUE", "default")]
    poll_delay = 0.005
    handle_signals = True


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"err": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["err"], "level": "WARNING"}},
}
HAS_BATCH = False


class AsyncClient:
    async def start(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(URL))

    async def send(self, task: str, queue: str, t: float) -> None:
        args = (t,) if task == "stamp" else ()
        await self.pool.enqueue_job(task, *args, _queue_name=QUEUES[queue])

    async def close(self) -> None:
        await self.pool.aclose()
