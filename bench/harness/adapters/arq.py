from __future__ import annotations

from .base import Adapter, WorkerSpec


class ArqAdapter(Adapter):
    name = "arq"
    packages = ("arq", "redis", "hiredis")
    one_queue_per_worker = True
    config = (
        "`arq arq_app.WorkerSettings --custom-log-dict arq_app.LOG_CONFIG`, max_jobs=N, "
        "poll_delay=5 ms (the 0.5 s default sleeps between fetches and caps a drain near "
        "200 jobs/s); async functions."
    )
    guarantees = (
        "at-least-once-ish: a job stays queued while in progress and is re-run after its "
        "in-progress key expires if the worker dies; results kept 3600 s"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        (queue,) = queues
        return WorkerSpec(
            [self.bin("arq"), "arq_app.WorkerSettings", "--custom-log-dict", "arq_app.LOG_CONFIG"],
            {"BENCH_CONCURRENCY": str(concurrency), "BENCH_QUEUE": queue},
        )
