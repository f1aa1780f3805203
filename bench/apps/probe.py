"""In-worker instrumentation shared by every library's task module.

A job calls `hit(kind)` (and `stamp(kind, t)` for enqueue->start latency). That
costs a lock and a few attribute writes: no I/O in the job. A daemon thread per
worker process (started lazily, so it survives forks) publishes the counters to
the private Redis every 20 ms:

    HSET bench:done "<pid>:<kind>" "<count> <first_unix> <last_unix>"
    RPUSH bench:lat:<kind> <seconds> ...

The harness polls those keys; completion detection therefore adds no round trip
to any job of any library. Needs only the standard library and redis-py.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import redis

PERIOD = 0.02


class _Probe:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.counts: dict[str, list[float]] = {}  # kind -> [count, first, last]
        self.lat: collections.deque[tuple[str, float]] = collections.deque()
        self.client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        self._published: dict[str, float] = {}
        threading.Thread(target=self._loop, name="bench-probe", daemon=True).start()

    def hit(self, kind: str, now: float) -> None:
        with self.lock:
            entry = self.counts.get(kind)
            if entry is None:
                self.counts[kind] = [1, now, now]
            else:
                entry[0] += 1
                entry[2] = now

    def _loop(self) -> None:
        while True:
            time.sleep(PERIOD)
            try:
                self._publish()
            except redis.RedisError:
                continue

    def _publish(self) -> None:
        with self.lock:
            snapshot = {k: list(v) for k, v in self.counts.items()}
        changed = {k: v for k, v in snapshot.items() if self._published.get(k) != v[0]}
        drained: dict[str, list[float]] = {}
        while self.lat:
            kind, value = self.lat.popleft()
            drained.setdefault(kind, []).append(value)
        if not changed and not drained:
            return
        pipe = self.client.pipeline(transaction=False)
        for kind, (count, first, last) in changed.items():
            pipe.hset("bench:done", f"{self.pid}:{kind}", f"{int(count)} {first!r} {last!r}")
        for kind, values in drained.items():
            pipe.rpush(f"bench:lat:{kind}", *values)
        pipe.execute()
        for kind, (count, _, _) in changed.items():
            self._published[kind] = count


_probe: _Probe | None = None
_create = threading.Lock()


def _get() -> _Probe:
    global _probe
    probe = _probe
    if probe is None or probe.pid != os.getpid():
        with _create:
            probe = _probe
            if probe is None or probe.pid != os.getpid():
                probe = _probe = _Probe()
    return probe


def hit(kind: str) -> None:
    """Count one finished job of this kind."""
    _get().hit(kind, time.time())


def stamp(kind: str, enqueued_at: float) -> None:
    """Record enqueue->start latency of a job carrying its enqueue time, and count it."""
    now = time.time()
    probe = _get()
    probe.lat.append((kind, now - enqueued_at))
    probe.hit(kind, now)
