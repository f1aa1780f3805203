"""Reading the run logs the chaos handlers write."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis


def _entries(value: str | None) -> list[tuple[int, float]]:
    out = []
    for item in (value or "").split(";"):
        if item:
            pid, _, ts = item.partition("@")
            out.append((int(pid), float(ts)))
    return out


@dataclass
class RunLog:
    """Per job: completed runs and started runs, as (pid, unix time)."""

    runs: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    starts: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @classmethod
    def read(cls, r: redis.Redis, keys: list[str]) -> RunLog:
        log = cls()
        for start in range(0, len(keys), 5000):
            chunk = keys[start : start + 5000]
            runs = r.mget([f"test:log:{k}" for k in chunk])
            starts = r.mget([f"test:start:{k}" for k in chunk])
            for k, run, began in zip(chunk, runs, starts, strict=True):
                log.runs[k] = _entries(run)
                log.starts[k] = _entries(began)
        return log

    def recovery_times(self, killed: dict[int, float]) -> list[float]:
        """For each killed worker: kill -> completion elsewhere of the last job it held."""
        out = []
        for pid, at in killed.items():
            finished = [
                self.runs[k][-1][1]
                for k, began in self.starts.items()
                if any(p == pid for p, _ in began)
                and self.runs.get(k)
                and self.runs[k][-1][0] != pid
            ]
            if finished:
                out.append(max(finished) - at)
        return out

    @property
    def lost(self) -> list[str]:
        return [k for k, entries in self.runs.items() if not entries]

    @property
    def duplicated(self) -> dict[str, list[tuple[int, float]]]:
        return {k: e for k, e in self.runs.items() if len(e) > 1}

    def unexplained_duplicates(self, killed: set[int]) -> list[str]:
        """Duplicates where an earlier run was not on a worker that got killed."""
        return [
            k for k, e in self.duplicated.items() if any(pid not in killed for pid, _ in e[:-1])
        ]
