from __future__ import annotations

from .base import ROOT, Adapter, WorkerSpec


class BananasAdapter(Adapter):
    name = "bananas"
    packages = ("bananas", "redis", "hiredis", "orjson", "uvloop")
    has_batch = True
    multi_queue = True
    config = (
        "`bananas worker --concurrency N`, async no-op handlers on the event loop, "
        "LOG_LEVEL=warning, HEALTH_PORT=0; batch = `app.enqueue_many` in chunks of 1,000. "
        "Priority: specialized = WORKER_MODE=specialized WORKER_PRIORITIES=high + a default "
        "worker; default = two default workers (high->normal->low)."
    )
    guarantees = (
        "at-least-once: leased delivery with heartbeat, ack after the handler returns, "
        "results stored (24 h TTL)"
    )

    @property
    def env_dir(self):  # type: ignore[no-untyped-def]
        return ROOT / ".venv"

    @property
    def requirements(self) -> None:
        return None  # the project venv (`make venv`)

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        env = {"HEALTH_PORT": "0", "LOG_LEVEL": "warning"}
        if queues == ("high",):
            env |= {"WORKER_MODE": "specialized", "WORKER_PRIORITIES": "high"}
        argv = [
            self.bin("bananas"),
            "worker",
            "--app",
            "bananas_app:app",
            "--concurrency",
            str(concurrency),
        ]
        return WorkerSpec(argv, env)
