"""The demo from start to finish: processes up, jobs in, watch, stop, report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

from .. import demo_jobs
from ..app import Bananas
from ..config import Settings
from ..redact import redact_url
from ..vocabulary import Mode
from .plan import make_plan
from .processes import APP, CONCURRENCY, DEMO_DIR, Processes, child_env
from .progress import Display, Progress, Snapshot
from .summary import Summary

DEADLINE_S = 50.0  # the demo gives up (and says so) rather than hang
DRAIN_TARGET_S = 6.0  # how long the bulk of the jobs should take to run


def broker_url(settings: Settings) -> tuple[str, bool]:
    """(URL, fresh embedded file?). REDIS_URL alone does not count: the demo
    never writes into a Redis nobody pointed it at explicitly."""
    url = settings.broker_url
    if url and (os.environ.get("BANANAS_BROKER_URL") or url != os.environ.get("REDIS_URL")):
        return url, False
    db = (DEMO_DIR / "demo.db").resolve()  # absolute: the hints work from any folder
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()
    return f"sqlite:///{db}", True


def cli_command() -> str:
    """How to call `bananas` from this shell: after `make demo` the script is
    in .venv/bin, which is not on PATH (the venv is never activated)."""
    script = Path(sys.executable).parent / "bananas"
    found = shutil.which("bananas")
    if found is not None and (not script.exists() or Path(found).samefile(script)):
        return "bananas"
    if not script.exists():
        return f"{sys.executable} -m bananas.cli"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)


def work_ms(jobs: int) -> float:
    """Mean job duration so that the bulk drains in about DRAIN_TARGET_S."""
    return min(300.0, max(5.0, DRAIN_TARGET_S * CONCURRENCY / jobs * 1000))


def run(settings: Settings, jobs: int) -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    url, fresh = broker_url(settings)
    processes = Processes(child_env(url, settings, work_ms(jobs)))
    try:
        return asyncio.run(Demo(settings, url, fresh, jobs, processes).main())
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the worker and the scheduler...", flush=True)
        return 130
    finally:
        processes.stop()


class Demo:
    def __init__(
        self, settings: Settings, url: str, fresh: bool, jobs: int, processes: Processes
    ) -> None:
        self.settings = settings
        self.url = url
        self.fresh = fresh
        self.jobs = jobs
        self.processes = processes
        self.out = sys.stdout
        self.client = Bananas(url, prefix=settings.prefix, settings=settings)
        self.client.include(demo_jobs.app)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def main(self) -> int:
        started = time.monotonic()
        where = f"a fresh embedded SQLite file ({self.url})" if self.fresh else redact_url(self.url)
        self.say(f"Bananas demo: {self.jobs} jobs on {where}")
        self.say(f"  starting a thin-mode worker (concurrency {CONCURRENCY}) and a scheduler...")
        self.processes.start("worker", "worker", "--app", APP, "--mode", Mode.THIN)
        self.processes.start("scheduler", "scheduler")
        try:
            if not await self._until_started():
                return 1
            return await self._run_jobs(started)
        finally:
            await self.client.aclose()

    async def _until_started(self) -> bool:
        deadline = time.monotonic() + 30.0
        while not all(self.processes.logged(n, "worker.started") for n in self.processes.procs):
            if (name := self.processes.exited()) is not None or time.monotonic() > deadline:
                self._failed(name or "worker", "did not start")
                return False
            await asyncio.sleep(0.05)
        return True

    def _failed(self, name: str, what: str) -> None:
        log = self.processes.logs[name]
        tail = log.read_text(errors="replace").splitlines()[-15:]
        self.say(f"bananas demo: the {name} {what}; last lines of {log}:")
        for line in tail:
            self.say(f"  {line}")

    async def _run_jobs(self, started: float) -> int:
        plan = make_plan(self.client, self.jobs)
        enqueued_at = time.time()
        await self.client.enqueue_many_async(plan.specs)
        self.say(
            f"  enqueued {len(plan.specs)} jobs: emails (high), image resizes (normal), "
            f"reports (low), {len(plan.delay)} delayed reminders, a flaky payment and "
            "a CRM sync that cannot succeed\n"
        )
        broker = self.client.async_broker()
        snap = await self._watch(Progress(broker, plan), enqueued_at)
        finished = snap.finished == snap.total
        if not finished:
            self.say(f"\nbananas demo: not finished after {DEADLINE_S:.0f}s; stopping")
        codes = self.processes.stop()
        summary = await Summary.collect(broker, plan, enqueued_at)
        self._report(summary, codes, time.monotonic() - started)
        return 0 if finished and summary.as_expected() else 1

    async def _watch(self, progress: Progress, enqueued_at: float) -> Snapshot:
        display = Display(self.out)
        while True:
            snap = await progress.poll()
            elapsed = time.time() - enqueued_at
            done = snap.finished == snap.total
            display.show(snap, elapsed, final=done)
            if done or elapsed > DEADLINE_S:
                return snap
            if (name := self.processes.exited()) is not None:
                self._failed(name, "exited early")
                return snap
            await asyncio.sleep(display.interval)

    def _report(self, s: Summary, codes: dict[str, int | None], total_s: float) -> None:
        self.say()
        self.say(
            f"Finished {s.finished} of {s.total} jobs in {s.drain_s:.1f} s "
            f"({s.throughput:.1f} jobs/s, one worker, concurrency {CONCURRENCY}); "
            f"demo wall time {total_s:.1f} s"
        )
        by_priority = ", ".join(f"{p} {n}" for p, n in s.completed_by_priority.items())
        self.say(f"  completed      {s.completed:>5}   ({by_priority})")
        self.say(f"  retries        {s.retries:>5}   {s.retry_detail}")
        self.say(f"  dead letters   {s.dead:>5}   {s.dead_detail}")
        self.say(f"  delayed        {len(s.delayed):>5}   {s.delayed_detail}")
        stopped = ", ".join(
            f"{n} {'exited 0' if c == 0 else f'exit code {c}'}" for n, c in codes.items()
        )
        self.say(f"  processes      stopped with SIGTERM: {stopped}")
        logs = ", ".join(str(p) for p in self.processes.logs.values())
        self.say(f"  logs           {logs}")
        self._next_steps()

    def _next_steps(self) -> None:
        flag = f" --broker {redact_url(self.url)}"
        cli = cli_command()
        self.say("\nTry next:")
        self.say(f"  {cli} status{flag}            # queue depths, in flight, dead")
        self.say(f"  {cli} dlq list{flag}          # the dead letter, with its error")
        self.say(f"  {cli} dashboard{flag}         # the web dashboard")
        if self.url.startswith("sqlite:"):
            self.say("  With Redis, the production broker (redis-server 7+ running):")
            self.say(f"    REDIS_URL=redis://localhost:6379/0 {cli} worker --app {APP}")
