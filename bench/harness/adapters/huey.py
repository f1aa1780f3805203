from __future__ import annotations

from .base import Adapter, WorkerSpec


class HueyAdapter(Adapter):
    name = "huey"
    packages = ("huey", "redis", "hiredis")
    config = (
        "`huey_consumer huey_app.huey -k thread -w N -q`; RedisHuey (blocking dequeue), "
        "results=True, store_none=True; priority workload uses PriorityRedisHuey."
    )
    guarantees = (
        "at-most-once: dequeue is destructive, a job running when the worker dies is lost; "
        "results stored"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        return WorkerSpec(
            [
                self.bin("huey_consumer"),
                "huey_app.huey",
                "-k",
                "thread",
                "-w",
                str(concurrency),
                "-q",
            ]
        )

    def priority_workers(self, mode: str, concurrency: int) -> list[WorkerSpec] | None:
        if mode != "default":
            return None  # one queue with per-task priority: no dedicated high workers
        return [self.worker(concurrency) for _ in range(2)]
