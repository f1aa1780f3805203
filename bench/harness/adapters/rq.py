from __future__ import annotations

from .base import Adapter, WorkerSpec


class RqAdapter(Adapter):
    name = "rq"
    packages = ("rq", "redis", "hiredis")
    has_batch = True
    concurrent = False
    multi_queue = True
    config = (
        "`rq worker --worker-class rq.worker.SimpleWorker --logging_level WARNING queues...` "
        "(SimpleWorker runs jobs in the worker process; the default Worker forks per job, "
        "which is far slower); one job at a time per process; batch = Queue.enqueue_many."
    )
    guarantees = (
        "at-most-once: a job whose worker dies is moved to the failed registry, not retried; "
        "results stored (result_ttl 500 s)"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        return WorkerSpec(
            [
                self.bin("rq"),
                "worker",
                "--url",
                "{redis_url}",
                "--worker-class",
                "rq.worker.SimpleWorker",
                "--logging_level",
                "WARNING",
                *queues,
            ]
        )
