"""The one small interface every library adapter implements (harness side).

An adapter knows where its library's virtualenv is, how to install it, how to
start its worker for a set of queues, and what the configuration guarantees.
Everything that imports the library lives in `bench/apps/<name>_app.py`, which
runs inside that virtualenv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2]
ROOT = BENCH.parent
ENVS = BENCH / ".envs"


@dataclass(frozen=True)
class WorkerSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Adapter:
    name: str = ""
    packages: tuple[str, ...] = ()  # the pinned distributions whose versions we report
    has_batch: bool = False  # a batch enqueue API exists (used by `enqueue` batch)
    concurrent: bool = True  # False: one job at a time per process (no concurrency knob)
    multi_queue: bool = False  # one worker can consume several queues in a priority order
    one_queue_per_worker: bool = False  # a worker consumes exactly one queue
    config: str = ""  # how it is configured, for RESULTS.md
    guarantees: str = ""  # what that configuration promises, for RESULTS.md

    @property
    def env_dir(self) -> Path:
        return ENVS / self.name

    @property
    def python(self) -> Path:
        return self.env_dir / "bin" / "python"

    @property
    def requirements(self) -> Path | None:
        return BENCH / "requirements" / f"{self.name}.txt"

    def bin(self, tool: str) -> str:
        return str(self.env_dir / "bin" / tool)

    def worker(self, concurrency: int, queues: tuple[str, ...] = ("default",)) -> WorkerSpec:
        raise NotImplementedError

    def priority_workers(self, mode: str, concurrency: int) -> list[WorkerSpec] | None:
        """Workers for the priority workload; None when the library cannot do `mode`.

        specialized: one worker that takes only high jobs + one that takes the rest.
        default: two identical workers taking high before low."""
        if mode == "specialized":
            if self.multi_queue:
                return [
                    self.worker(concurrency, ("high",)),
                    self.worker(concurrency, ("high", "low")),
                ]
            if self.one_queue_per_worker:
                return [self.worker(concurrency, ("high",)), self.worker(concurrency, ("low",))]
            return None
        if mode == "default" and self.multi_queue:
            return [self.worker(concurrency, ("high", "low")) for _ in range(2)]
        return None
