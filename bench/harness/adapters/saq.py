from __future__ import annotations

from .base import Adapter, WorkerSpec


class SaqAdapter(Adapter):
    name = "saq"
    packages = ("saq", "redis", "hiredis")
    one_queue_per_worker = True
    config = "`saq saq_app.settings --workers 1 --quiet`, concurrency=N, async functions."
    guarantees = (
        "at-least-once-ish: active jobs carry a heartbeat and are swept and retried when "
        "stuck; results kept (job ttl 600 s)"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        (queue,) = queues
        return WorkerSpec(
            [self.bin("saq"), "saq_app.settings", "--workers", "1", "--quiet"],
            {"BENCH_CONCURRENCY": str(concurrency), "BENCH_QUEUE": queue},
        )
