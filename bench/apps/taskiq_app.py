"""Taskiq: taskiq-redis RedisStreamBroker (consumer group; messages acked after
the result is saved, unacked ones reclaimed after idle_timeout) with the Redis
result backend."""

from __future__ import annotations

import asyncio
import os

import probe
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ["BENCH_REDIS_URL"]
broker = RedisStreamBroker(url=URL).with_result_backend(
    RedisAsyncResultBackend(redis_url=URL, result_ex_time=3600)
)


@broker.task(task_name="noop")
async def noop() -> None:
    probe.hit("noop")


@broker.task(task_name="stamp")
async def stamp(t: float) -> None:
    probe.stamp("stamp", t)


@broker.task(task_name="sleep")
async def sleep() -> None:
    await asyncio.sleep(0.05)
    probe.hit("sleep")


TASKS = {"noop": noop, "stamp": stamp, "sleep": sleep}
HAS_BATCH = False


class AsyncClient:
    async def start(self) -> None:
        await broker.startup()

    async def send(self, task: str, queue: str, t: float) -> None:
        if task == "stamp":
            await stamp.kiq(t)
        else:
            await TASKS[task].kiq()

    async def close(self) -> None:
        await broker.shutdown()
