"""Lost replies: every connection of the worker is killed (`CLIENT KILL TYPE
normal`) every 0.25 s during a drain. A dequeue, ack or heartbeat whose reply
is lost must leave no job leased to nobody, charge no stall to a job that
never started, report an ack that was applied as done, and the drain must
stay within 2x of the same drain without kills."""

from __future__ import annotations

import collections
import time

import redis
from apps.chaos import app
from support import WorkerFactory, wait_for

from bananas.config import Settings
from chaos.conftest import scale

# Faster than the 0.25 s of the issue: on the shared 2-core test machine a
# kill at 0.25 s lands between a script's run and its reply too rarely to
# fail the unfixed code every time (at 0.1 s it dead-lettered 40 of 40,000).
KILL_EVERY = 0.1


def enqueue(n: int) -> None:
    app.configure(Settings.load())
    for start in range(0, n, 2000):
        app.enqueue_many([app.spec("noop", k=str(i)) for i in range(start, min(n, start + 2000))])


def completed(r: redis.Redis) -> int:
    return int(r.zcard("bananas:completed"))


def drain(workers: WorkerFactory, r: redis.Redis, n: int, kill: bool) -> float:
    """Seconds from the worker's start to the last of n completions."""
    enqueue(n)
    env = {"MAX_STALLS": "1", "LEASE_TIMEOUT": "3s", "LOG_LEVEL": "warning"}
    worker = workers.start("apps.chaos:app", "--concurrency", "20", wait=False, **env)
    began = time.monotonic()
    deadline = began + 120
    next_kill = began + KILL_EVERY
    kills = 0
    while completed(r) + r.zcard("bananas:dead") < n:
        assert time.monotonic() < deadline, f"{completed(r)} of {n} completed"
        if kill and time.monotonic() >= next_kill:
            kills += int(r.execute_command("CLIENT", "KILL", "TYPE", "normal"))
            next_kill += KILL_EVERY
        time.sleep(0.01)
    took = time.monotonic() - began
    wait_for(lambda: r.zcard("bananas:active") == 0, 30, message="every lease settled")
    dead = [r.hget("bananas:dead:info", i) for i in r.zrange("bananas:dead", 0, 2)]
    events = collections.Counter(
        (e.get("event"), e.get("error", "")[:60])
        for e in worker.events()
        if e.get("level") != "info"
    )
    assert r.zcard("bananas:dead") == 0, (dead, events.most_common(6))
    assert completed(r) == n
    assert r.hlen("bananas:stalls") == 0
    assert not kill or kills > 0
    worker.stop()
    recovered = worker.events("job.recovered")
    lost = worker.events("job.lease_lost")
    assert recovered == [] and lost == [], (recovered[:3], lost[:3])
    return took


def test_client_kill_during_a_drain(workers: WorkerFactory, r: redis.Redis) -> None:
    n = scale(60_000, 40_000)
    calm = drain(workers, r, n, kill=False)
    r.flushall()
    stormy = drain(workers, r, n, kill=True)
    print(f"\nCHAOS lost replies: {n} jobs, {calm:.1f} s without kills, {stormy:.1f} s with")
    assert stormy < 2 * calm, (calm, stormy)
