"""The demo's live view: how many jobs of each priority are where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from ..brokers import Broker
from ..brokers.base import JobResult
from ..vocabulary import PRIORITIES, JobState, Status
from .plan import Plan


@dataclass
class Snapshot:
    rows: dict[str, dict[str, int]]  # priority -> {queued, running, done, dead}
    waiting_on_timer: int
    finished: int
    total: int


class Progress:
    def __init__(self, broker: Broker, plan: Plan) -> None:
        self.broker = broker
        self.plan = plan
        self.results: dict[str, JobResult] = {}

    async def poll(self) -> Snapshot:
        pending = [i for i in self.plan.ids if i not in self.results]
        for job_id, result in zip(pending, await self.broker.get_results(pending), strict=True):
            if result is not None:
                self.results[job_id] = result
        running = await self._listed(JobState.RUNNING)
        timers = await self._listed(JobState.SCHEDULED)
        rows = {p: {"queued": 0, "running": 0, "done": 0, "dead": 0} for p in PRIORITIES}
        for job_id, priority in self.plan.priority.items():
            result = self.results.get(job_id)
            if result is not None:
                column = "done" if result.status == Status.COMPLETED else "dead"
            else:
                column = "running" if job_id in running else "queued"
            rows[priority][column] += 1
        return Snapshot(rows, len(timers), len(self.results), len(self.plan.priority))

    async def _listed(self, state: str) -> set[str]:
        jobs = await self.broker.list_jobs(state, 0, 10_000)
        return {j.id for j in jobs if j.id in self.plan.priority}


class Display:
    """Redrawn in place on a terminal; a plain line every few seconds otherwise."""

    COLUMNS = ("queued", "running", "done", "dead")

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self.drawn = 0
        self.next_plain = 0.0

    @property
    def interval(self) -> float:
        return 0.2 if self.tty else 0.5

    def show(self, snap: Snapshot, elapsed: float, final: bool = False) -> None:
        if self.tty:
            self._redraw(self._table(snap, elapsed))
        elif final or elapsed >= self.next_plain:
            self.next_plain = elapsed + 2.0
            self._write([self._line(snap, elapsed)])

    def _table(self, snap: Snapshot, elapsed: float) -> list[str]:
        head = "  priority " + "".join(f"{c:>10}" for c in self.COLUMNS)
        lines = [head]
        for priority, row in snap.rows.items():
            lines.append(f"  {priority:<9}" + "".join(f"{row[c]:>10}" for c in self.COLUMNS))
        rate = snap.finished / elapsed if elapsed > 0 else 0.0
        lines.append(
            f"  {elapsed:5.1f}s  {snap.finished}/{snap.total} finished  {rate:5.1f} jobs/s"
            f"  {snap.waiting_on_timer} waiting on a timer (delay or retry back-off)"
        )
        return lines

    def _line(self, snap: Snapshot, elapsed: float) -> str:
        parts = [
            f"{p} {r['queued']} queued/{r['running']} running/{r['done']} done/{r['dead']} dead"
            for p, r in snap.rows.items()
        ]
        return f"  [{elapsed:5.1f}s] " + " | ".join(parts)

    def _redraw(self, lines: list[str]) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")  # back to the first line of the table
        self._write([f"\x1b[2K{line}" for line in lines])
        self.drawn = len(lines)

    def _write(self, lines: list[str]) -> None:
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
