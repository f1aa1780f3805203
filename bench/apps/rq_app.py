"""RQ: jobs and results in Redis (result_ttl default 500 s). A job whose worker
dies is moved to the failed registry by the cleanup, not retried."""

from __future__ import annotations

import os
import time

import probe
from redis import Redis
from rq import Queue

URL = os.environ["BENCH_REDIS_URL"]


def noop() -> None:
    probe.hit("noop")


def stamp(t: float) -> None:
    probe.stamp("stamp", t)


def sleep() -> None:
    time.sleep(0.05)
    probe.hit("sleep")


TASKS = {"noop": noop, "stamp": stamp, "sleep": sleep}
HAS_BATCH = True  # Queue.enqueue_many (one pipeline)


class Client:
    def __init__(self) -> None:
        self.conn = Redis.from_url(URL)
        self.queues: dict[str, Queue] = {}

    def _queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(name, connection=self.conn)
        return self.queues[name]

    def send(self, task: str, queue: str, t: float) -> None:
        args = (t,) if task == "stamp" else ()
        self._queue(queue).enqueue(TASKS[task], *args)

    def send_many(self, task: str, queue: str, count: int) -> None:
        fn = TASKS[task]
        self._queue(queue).enqueue_many([Queue.prepare_data(fn) for _ in range(count)])

    def close(self) -> None:
        self.conn.close()
