from __future__ import annotations

from .base import Adapter, WorkerSpec


class CeleryAdapter(Adapter):
    name = "celery"
    packages = ("celery", "kombu", "redis", "hiredis")
    multi_queue = True
    config = (
        "`celery -A celery_app worker --pool threads --concurrency N --without-mingle "
        "--without-gossip --loglevel WARNING -Q queues`; redis broker + redis result backend; "
        "worker_prefetch_multiplier=4 (default)."
    )
    guarantees = (
        "at-least-once: task_acks_late=True + task_reject_on_worker_lost=True (unacked "
        "messages come back after the Redis visibility_timeout, 1 h default); results stored"
    )

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        return WorkerSpec(
            [
                self.bin("celery"),
                "-A",
                "celery_app",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
                "-Q",
                ",".join(queues),
            ]
        )
