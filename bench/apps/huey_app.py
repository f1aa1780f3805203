"""Huey: RedisHuey (blocking BRPOP dequeue), results stored (store_none=True so a
None return is stored too). Huey's dequeue is destructive: a job in flight when
a worker dies is lost (at-most-once). BENCH_HUEY_PRIORITY=1 selects
PriorityRedisHuey for the priority workload."""

from __future__ import annotations

import os
import time

import probe
from huey import PriorityRedisHuey, RedisHuey

URL = os.environ["BENCH_REDIS_URL"]
_cls = PriorityRedisHuey if os.environ.get("BENCH_HUEY_PRIORITY") else RedisHuey
huey = _cls("bench", url=URL, results=True, store_none=True, utc=True)


@huey.task()
def noop() -> None:
    probe.hit("noop")


@huey.task()
def stamp(t: float) -> None:
    probe.stamp("stamp", t)


@huey.task()
def sleep() -> None:
    time.sleep(0.05)
    probe.hit("sleep")


TASKS = {"noop": noop, "stamp": stamp, "sleep": sleep}
PRIORITY = {"default": 50, "high": 100, "low": 0}  # higher runs first
HAS_BATCH = False


class Client:
    def send(self, task: str, queue: str, t: float) -> None:
        args = (t,) if task == "stamp" else ()
        if _cls is PriorityRedisHuey:
            TASKS[task](*args, priority=PRIORITY[queue])
        else:
            TASKS[task](*args)

    def close(self) -> None:
        pass
