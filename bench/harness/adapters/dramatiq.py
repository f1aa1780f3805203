from __future__ import annotations

from .base import Adapter, WorkerSpec


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    packages = ("dramatiq", "redis", "hiredis")
    multi_queue = True
    config = (
        "`dramatiq dramatiq_app --processes 1 --threads N --queues ...` (a supervisor process "
        "plus one worker process; RSS is the sum); Results middleware with RedisBackend, "
        "store_results=True; default prefetch. Sync actors (Dramatiq's AsyncIO middleware "
        "still holds one worker thread per running actor)."
    )
    guarantees = (
        "at-least-once: messages acked after processing; a dead worker's unacked messages "
        "are requeued via heartbeats; results stored"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        return WorkerSpec(
            [
                self.bin("dramatiq"),
                "dramatiq_app",
                "--processes",
                "1",
                "--threads",
                str(concurrency),
                "--queues",
                *queues,
            ]
        )
