from __future__ import annotations

from .base import Adapter, WorkerSpec


class TaskiqAdapter(Adapter):
    name = "taskiq"
    packages = ("taskiq", "taskiq-redis", "redis", "hiredis")
    config = (
        "`taskiq worker taskiq_app:broker --workers 1 --max-async-tasks N --log-level WARNING` "
        "(a supervisor plus one worker process; RSS is the sum); RedisStreamBroker + "
        "RedisAsyncResultBackend; ack-type when_saved (default)."
    )
    guarantees = (
        "at-least-once: stream consumer group, ack after the result is saved, unacked "
        "messages reclaimed after idle_timeout (10 min); results stored"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        return WorkerSpec(
            [
                self.bin("taskiq"),
                "worker",
                "taskiq_app:broker",
                "--workers",
                "1",
                "--max-async-tasks",
                str(concurrency),
                "--log-level",
                "WARNING",
            ]
        )
