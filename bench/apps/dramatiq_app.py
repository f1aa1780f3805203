"""Dramatiq: Redis broker (acks after processing, heartbeats requeue a dead
worker's messages) with the Results middleware storing results in Redis."""

from __future__ import annotations

import os
import time

import dramatiq
import probe
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ["BENCH_REDIS_URL"]
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)

OPTS = {"store_results": True, "max_retries": 3}


@dramatiq.actor(queue_name="default", **OPTS)
def noop() -> None:
    probe.hit("noop")


@dramatiq.actor(queue_name="default", **OPTS)
def stamp(t: float) -> None:
    probe.stamp("stamp", t)


@dramatiq.actor(queue_name="default", **OPTS)
def sleep() -> None:
    time.sleep(0.05)
    probe.hit("sleep")


# Priority workload: a queue per priority; `priority` orders prefetched messages.
@dramatiq.actor(queue_name="high", priority=0, **OPTS)
def stamp_high(t: float) -> None:
    probe.stamp("stamp", t)


@dramatiq.actor(queue_name="low", priority=100, **OPTS)
def noop_low() -> None:
    probe.hit("noop")


ACTORS = {
    ("noop", "default"): noop,
    ("stamp", "default"): stamp,
    ("sleep", "default"): sleep,
    ("stamp", "high"): stamp_high,
    ("noop", "low"): noop_low,
}
HAS_BATCH = False


class Client:
    def send(self, task: str, queue: str, t: float) -> None:
        actor = ACTORS[(task, queue)]
        if actor.fn.__code__.co_argcount:
            actor.send(t)
        else:
            actor.send()

    def close(self) -> None:
        broker.close()
