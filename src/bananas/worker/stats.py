"""In-process counters the metrics log, /metrics and the registry read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class WorkerStats:
    started_at: float = field(default_factory=time.time)
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    requeued: int = 0
    recovered: int = 0
    duration_ms_total: float = 0.0

    def finished(self, duration_ms: float, ok: bool) -> None:
        if ok:
            self.completed += 1
        else:
            self.failed += 1
        self.duration_ms_total += duration_ms

    def rejected_one(self) -> None:
        self.rejected += 1

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.rejected
