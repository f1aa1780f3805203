"""Celery: redis broker + redis result backend, acks_late (at-least-once)."""

from __future__ import annotations

import os
import time

import probe
from celery import Celery

URL = os.environ["BENCH_REDIS_URL"]
app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_acks_late=True,  # ack after the task ran: redelivered if the worker dies
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,  # the default, stated: prefetch = 4 x concurrency
    task_ignore_result=False,  # results stored in Redis (SUCCESS + return value)
    result_expires=3600,
    task_default_queue="default",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    probe.hit("noop")


@app.task(name="stamp")
def stamp(t: float) -> None:
    probe.stamp("stamp", t)


@app.task(name="sleep")
def sleep() -> None:
    time.sleep(0.05)
    probe.hit("sleep")


TASKS = {"noop": noop, "stamp": stamp, "sleep": sleep}
HAS_BATCH = False  # group() publishes one message per task: no batch enqueue


class Client:
    def send(self, task: str, queue: str, t: float) -> None:
        args = (t,) if task == "stamp" else ()
        TASKS[task].apply_async(args=args, queue=queue)

    def close(self) -> None:
        app.close()
