"""`bananas demo`: Bananas' main job end to end on one machine, no Redis needed.

It starts a thin-mode worker and a scheduler as real processes on a fresh
embedded SQLite file (.bananas/demo.db, unless BANANAS_BROKER_URL or --broker
names a broker), enqueues a web shop's mix of jobs (three priorities,
several job types, delayed jobs, one that fails twice and then succeeds, one
that ends in the dead-letter queue), shows their progress live, stops the
processes gracefully and prints a summary with the next commands to try.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from . import demo_jobs
from .app import Bananas, JobSpec
from .brokers import Broker
from .brokers.base import JobResult
from .config import Settings
from .job import new_job_id

DEMO_DIR = Path(".bananas")
DEADLINE_S = 50.0  # the demo gives up (and says so) rather than hang
DRAIN_TARGET_S = 6.0  # how long the bulk of the jobs should take to run
CONCURRENCY = 10
PRIORITIES = ("high", "normal", "low")
DELAYS_S = (1.5, 2.0, 2.5, 3.0, 3.5)
APP = "bananas.demo_jobs:app"


# -- the plan -----------------------------------------------------------------------
@dataclass
class Plan:
    specs: list[JobSpec] = field(default_factory=list)
    priority: dict[str, str] = field(default_factory=dict)  # job id -> priority
    name: dict[str, str] = field(default_factory=dict)  # job id -> job type
    delay: dict[str, float] = field(default_factory=dict)  # delayed job id -> seconds

    def add(self, client: Bananas, name: str, delay: float | None = None, **payload: Any) -> None:
        job_id = new_job_id()
        options: dict[str, Any] = {"_job_id": job_id}
        if delay is not None:
            options["_delay"] = delay
            self.delay[job_id] = delay
        spec = client.spec(name, **payload, **options)
        self.specs.append(spec)
        self.priority[job_id] = spec.priority
        self.name[job_id] = name

    @property
    def ids(self) -> list[str]:
        return list(self.priority)


def make_plan(client: Bananas, jobs: int) -> Plan:
    """The bulk (emails high, image resizes normal, reports low), a few
    delayed reminders, one flaky payment and one job that cannot succeed."""
    plan = Plan()
    for i in range(max(jobs - len(DELAYS_S) - 2, 3)):
        slot = i % 20
        if slot < 6:
            plan.add(client, "send_email", to=f"customer{i}@example.com", subject="Your order")
        elif slot < 15:
            plan.add(client, "resize_image", image_id=i, width=640)
        else:
            plan.add(client, "generate_report", report_id=i)
    for i, delay in enumerate(DELAYS_S):
        plan.add(client, "send_email", delay, to=f"late{i}@example.com", subject="Reminder")
    plan.add(client, "charge_card", order_id=1001, amount_cents=4_999)
    plan.add(client, "sync_legacy_crm", customer_id=42)
    return plan


# -- processes ------------------------------------------------------------------------
class Processes:
    """The worker and scheduler processes, with their logs under .bananas/."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._files: list[IO[bytes]] = []

    def start(self, name: str, *args: str) -> None:
        log = DEMO_DIR / f"demo-{name}.log"
        out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self._files.append(out)
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bananas.cli", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which drains them in order
        )

    def exited(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def logged(self, name: str, event: str) -> bool:
        return f'"event":"{event}"' in self.logs[name].read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM (graceful drain), then SIGKILL for whatever outlives `timeout`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        for f in self._files:
            f.close()
        self._files.clear()
        return codes


def child_env(url: str, settings: Settings, work_ms: float) -> dict[str, str]:
    """The demo's own settings; the caller's worker variables must not leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "BANANAS_", "LOG_"))
        and k not in ("REDIS_URL", "CONCURRENCY", "GROUP_ID", "ENABLE_SCHEDULER")
    }
    package_root = str(Path(__file__).resolve().parent.parent)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p),
        BANANAS_BROKER_URL=url,
        BANANAS_PREFIX=settings.prefix,
        BANANAS_DEMO_WORK_MS=f"{work_ms:.0f}",
        WORKER_CONCURRENCY=str(CONCURRENCY),
        # No prefetch: "running" in the display then counts exactly the jobs
        # executing (prefetched jobs hold a lease too, and would show as running).
        WORKER_PREFETCH="0",
        GROUP_ID="demo",
        HEALTH_PORT="0",
        RETRY_BACKOFF="200ms",
        SCHEDULER_INTERVAL="200ms",
        LOG_FORMAT="json",
    )
    return env


# -- progress ------------------------------------------------------------------------
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
        running = await self._listed("running")
        timers = await self._listed("scheduled")
        rows = {p: {"queued": 0, "running": 0, "done": 0, "dead": 0} for p in PRIORITIES}
        for job_id, priority in self.plan.priority.items():
            result = self.results.get(job_id)
            if result is not None:
                column = "done" if result.status == "completed" else "dead"
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


# -- the run ------------------------------------------------------------------------
def broker_url(settings: Settings) -> tuple[str, bool]:
    """(URL, fresh embedded file?). REDIS_URL alone does not count: the demo
    never writes into a Redis nobody pointed it at explicitly."""
    url = settings.broker_url
    if url and (os.environ.get("BANANAS_BROKER_URL") or url != os.environ.get("REDIS_URL")):
        return url, False
    db = DEMO_DIR / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()
    return f"sqlite:///{db}", True


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
        where = f"a fresh embedded SQLite file ({self.url})" if self.fresh else self.url
        self.say(f"Bananas demo: {self.jobs} jobs on {where}")
        self.say(f"  starting a thin-mode worker (concurrency {CONCURRENCY}) and a scheduler...")
        self.processes.start("worker", "worker", "--app", APP, "--mode", "thin")
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
        flag = f" --broker {self.url}"
        self.say("\nTry next:")
        self.say(f"  bananas status{flag}            # queue depths, in flight, dead")
        self.say(f"  bananas dlq list{flag}          # the dead letter, with its error")
        self.say(f"  bananas dashboard{flag}         # the web dashboard")
        if self.url.startswith("sqlite:"):
            self.say("  With Redis, the production broker (redis-server 7+ running):")
            self.say(f"    REDIS_URL=redis://localhost:6379/0 bananas worker --app {APP}")


# -- the summary ------------------------------------------------------------------------
@dataclass
class Summary:
    total: int
    finished: int
    completed: int
    dead: int
    retries: int
    drain_s: float
    completed_by_priority: dict[str, int]
    retry_detail: str
    dead_detail: str
    delayed: dict[str, float]  # delayed job id -> seconds from enqueue to finish
    delayed_detail: str

    @property
    def throughput(self) -> float:
        return self.finished / self.drain_s if self.drain_s > 0 else 0.0

    def as_expected(self) -> bool:
        return self.finished == self.total and self.dead == 1

    @classmethod
    async def collect(cls, broker: Broker, plan: Plan, enqueued_at: float) -> Summary:
        results = dict(zip(plan.ids, await broker.get_results(plan.ids), strict=True))
        attempts = await _attempts(broker, plan.ids)
        done = {i: r for i, r in results.items() if r is not None}
        completed = [i for i, r in done.items() if r.status == "completed"]
        dead = [i for i, r in done.items() if r.status != "completed"]
        last = max((_unix(r.completed_at) for r in done.values()), default=enqueued_at)
        by_priority = {p: 0 for p in PRIORITIES}
        for job_id in completed:
            by_priority[plan.priority[job_id]] += 1
        retried = {i: n - 1 for i, n in attempts.items() if n > 1}
        delayed = {i: _unix(done[i].completed_at) - enqueued_at for i in plan.delay if i in done}
        return cls(
            total=len(plan.ids),
            finished=len(done),
            completed=len(completed),
            dead=len(dead),
            retries=sum(retried.values()),
            drain_s=max(last - enqueued_at, 0.001),
            completed_by_priority=by_priority,
            retry_detail=_retry_detail(plan, retried, done),
            dead_detail="; ".join(f"{plan.name[i]}: {done[i].error}" for i in dead) or "none",
            delayed=delayed,
            delayed_detail=_delayed_detail(plan, delayed),
        )


async def _attempts(broker: Broker, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        records = await asyncio.gather(*(broker.get_record(i) for i in chunk))
        for job_id, raw in zip(chunk, records, strict=True):
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                out[job_id] = int(orjson.loads(raw or b"{}").get("attempts") or 0)
    return out


def _unix(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


def _retry_detail(plan: Plan, retried: dict[str, int], done: dict[str, JobResult]) -> str:
    parts = []
    for job_id, n in retried.items():
        outcome = "then succeeded" if done[job_id].status == "completed" else "then gave up"
        parts.append(f"{plan.name[job_id]} retried {n}x, {outcome}")
    return "; ".join(parts) or "none"


def _delayed_detail(plan: Plan, delayed: dict[str, float]) -> str:
    if not delayed:
        return "none finished"
    on_time = all(delayed[i] >= plan.delay[i] for i in delayed)
    span = f"{min(delayed.values()):.1f}-{max(delayed.values()):.1f} s after enqueue"
    return f"ran {span}" + (", none before its delay" if on_time else ", SOME EARLY")
