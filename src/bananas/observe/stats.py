"""In-process counters the metrics log, /metrics and the registry read.

Written only from the worker's event loop; read from the health thread
(plain ints and floats, so a read is never torn under the GIL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class WorkerStats:
    concurrency: int = 1
    started_at: float = field(default_factory=time.time)  # shown in the registry only
    # Uptime is local timing, so it is measured on the monotonic clock.
    started_mono: float = field(default_factory=time.monotonic)
    completed: int = 0
    failed: int = 0  # failed attempts (retried or dead-lettered)
    retried: int = 0
    dead_lettered: int = 0
    rejected: int = 0  # bad input, dead-lettered without running
    requeued: int = 0
    cancelled: int = 0  # stopped (or never started) because someone cancelled them
    recovered: int = 0  # expired leases this process's recoverer returned
    moved: int = 0  # due jobs this process's scheduler moved to ready
    fired: int = 0  # cron / periodic firings this process's scheduler enqueued
    duration_ms_total: float = 0.0
    busy_finished_s: float = 0.0
    running_since: dict[str, float] = field(default_factory=dict)
    # Set by the metrics layer: feeds the job-duration histogram (job type, seconds).
    observe_duration: Callable[[str, float], None] | None = None

    def finished(self, job_type: str, duration_ms: float, ok: bool) -> None:
        if self.observe_duration is not None:
            self.observe_duration(job_type, duration_ms / 1000)
        if ok:
            self.completed += 1
        else:
            self.failed += 1
        self.duration_ms_total += duration_ms

    def rejected_one(self) -> None:
        self.rejected += 1

    def begin(self, job_id: str) -> None:
        self.running_since[job_id] = time.monotonic()

    def end(self, job_id: str) -> None:
        started = self.running_since.pop(job_id, None)
        if started is not None:
            self.busy_finished_s += time.monotonic() - started

    def busy_seconds(self, now: float) -> float:
        """Slot-seconds spent on jobs so far, running ones included."""
        return self.busy_finished_s + sum(now - s for s in list(self.running_since.values()))

    def uptime(self) -> float:
        return time.monotonic() - self.started_mono

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.rejected

    @property
    def avg_duration_ms(self) -> float:
        runs = self.completed + self.failed
        return self.duration_ms_total / runs if runs else 0.0


@dataclass(slots=True)
class IntervalSampler:
    """Utilization and error rate between two calls of `sample()`.

    Utilization is busy slot-time over total slot-time in the interval; the
    error rate is failed over finished attempts in the interval."""

    stats: WorkerStats
    _at: float = field(default_factory=time.monotonic)
    _busy: float = 0.0
    _completed: int = 0
    _failed: int = 0

    def sample(self) -> tuple[float, float]:
        now = time.monotonic()
        busy = self.stats.busy_seconds(now)
        elapsed = now - self._at
        slots = elapsed * max(1, self.stats.concurrency)
        utilization = min(1.0, (busy - self._busy) / slots) if slots > 0 else 0.0
        done = (self.stats.completed - self._completed) + (self.stats.failed - self._failed)
        errors = self.stats.failed - self._failed
        self._at, self._busy = now, busy
        self._completed, self._failed = self.stats.completed, self.stats.failed
        return max(0.0, utilization), (errors / done if done else 0.0)
