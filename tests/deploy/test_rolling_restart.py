"""A rolling restart under load, with real processes (what a Deployment rollout
or `docker compose up -d` after a new image does to a pool, minus containers).

Three default-mode workers (concurrency 20) take a steady 200 jobs/s for 50 s
(10,000 jobs of 100 ms each, so about 20 are in flight at any time and every
SIGTERM lands on a worker with jobs to finish). Each worker in turn gets SIGTERM
and a replacement process is started. Every job must run exactly once (SIGTERM
drains: no worker is killed, so no job may run twice), every old worker must
exit 0, and each replacement must be ready and taking jobs within 10 s of its
start."""

from __future__ import annotations

import re
import signal
import threading
import time

import httpx
import pytest
import redis
from apps.core import app as core
from support import WorkerFactory, WorkerProcess, free_port, wait_for

from bananas import Bananas
from bananas.config import Settings

JOBS = 10_000
JOB_SECONDS = 0.1
RATE = 200  # jobs per second
BATCH = 20  # one enqueue_many every BATCH / RATE = 0.1 s
RESTART_AT = (8.0, 21.0, 34.0)  # seconds into the load
TAKING_JOBS_WITHIN = 10.0
COMPLETED = re.compile(r'^bananas_jobs_total\{status="completed"\} ([0-9.e+]+)$', re.M)


class Load(threading.Thread):
    """Enqueues JOBS `sleepy` jobs at RATE per second, on a fixed schedule,
    through an app of its own on `settings`' broker (the specs from
    apps.core's definitions): the shared apps.core.app is reconfigured by
    every test, and a load left running would enqueue into theirs
    (test_observe.py's readyz test, run after this test had failed, counted
    its sleepy runs and timed out). `halt()` ends it early."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="load", daemon=True)
        self.app = Bananas(settings=settings)
        self.started_at = 0.0
        self.finished_at = 0.0
        self.max_lag = 0.0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            self.started_at = time.monotonic()
            for tick in range(JOBS // BATCH):
                due = self.started_at + tick * BATCH / RATE
                delay = due - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)  # pacing of the load, not a wait for a condition
                if self._halt.is_set():
                    return
                self.max_lag = max(self.max_lag, -delay)
                first = tick * BATCH
                self.app.enqueue_many(
                    [
                        core.spec("sleepy", {"k": f"j{n}", "seconds": JOB_SECONDS})
                        for n in range(first, first + BATCH)
                    ]
                )
            self.finished_at = time.monotonic()
        except BaseException as exc:
            self.error = exc
        finally:
            self.app.close()

    def halt(self) -> None:
        """Stop enqueueing and wait for the thread (a no-op once it is done)."""
        self._halt.set()
        self.join(timeout=10)
        assert not self.is_alive(), "the load thread did not stop"


def _start(workers: WorkerFactory) -> tuple[WorkerProcess, int, float]:
    port = free_port()
    started = time.monotonic()
    worker = workers.start(
        "apps.core:app",
        wait=False,
        WORKER_MODE="default",
        WORKER_CONCURRENCY="20",
        HEALTH_PORT=str(port),
        HEALTH_HOST="127.0.0.1",
    )
    return worker, port, started


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None


def _ready(worker: WorkerProcess, port: int) -> bool:
    if worker.proc.poll() is not None:
        raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.output()}")
    response = _get(port, "/readyz")
    return response is not None and response.status_code == 200


def _in_flight(port: int) -> int:
    response = _get(port, "/drainz")
    return int(response.json()["in_flight"]) if response is not None else 0


def _completed(port: int) -> float:
    response = _get(port, "/metrics")
    if response is None:
        return 0.0
    match = COMPLETED.search(response.text)
    return float(match.group(1)) if match else 0.0


def _stop(worker: WorkerProcess) -> float:
    """SIGTERM; the worker drains and exits 0. Returns the drain time."""
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = worker.wait(timeout=40)
    assert code == 0, f"exit {code} after SIGTERM:\n{worker.output()[-3000:]}"
    return time.monotonic() - sent


@pytest.mark.timeout(170)
def test_rolling_restart_under_load_loses_and_repeats_nothing(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    pool = [_start(workers) for _ in range(3)]
    for worker, port, _ in pool:
        wait_for(lambda w=worker, p=port: _ready(w, p), 20, interval=0.05, message="ready")

    load = Load(Settings.load())
    load.start()
    try:
        wait_for(lambda: load.started_at > 0, 10, message="load started")
        replaced: list[dict[str, float]] = []
        in_flight_at_sigterm = 0
        for index, at in enumerate(RESTART_AT):
            wait_for(lambda at=at: time.monotonic() - load.started_at >= at, at + 5, interval=0.05)
            assert load.error is None, load.error
            old, old_port, _ = pool[index]
            # Jobs arrive in batches that one worker takes at a time: SIGTERM the
            # worker while it holds some, so that its drain has work to finish.
            wait_for(
                lambda p=old_port: _in_flight(p) > 0,
                10,
                interval=0.01,
                message="jobs in flight on the worker to restart",
            )
            old.signal(signal.SIGTERM)
            sent = time.monotonic()
            new, port, started = _start(workers)
            pool[index] = (new, port, started)
            code = old.wait(timeout=40)
            assert code == 0, f"exit {code} after SIGTERM:\n{old.output()[-3000:]}"
            drained = time.monotonic() - sent
            wait_for(lambda w=new, p=port: _ready(w, p), TAKING_JOBS_WITHIN, interval=0.05)
            ready = time.monotonic() - started
            wait_for(lambda p=port: _completed(p) > 0, TAKING_JOBS_WITHIN, interval=0.05)
            taking = time.monotonic() - started
            assert taking < TAKING_JOBS_WITHIN
            replaced.append({"drain_s": drained, "ready_s": ready, "taking_jobs_s": taking})
            # the drained worker let go of everything it held, charged nothing
            events = {e["event"] for e in old.events()}
            in_flight_at_sigterm += old.events("worker.draining")[0]["in_flight"]
            assert {"worker.draining", "worker.stopped"} <= events, events
            assert not events & {"worker.forced_exit", "job.lease_lost", "job.broker_error"}

        load.join(timeout=90)
    finally:
        load.halt()  # on a failure above too: it must not outlive this test
    assert not load.is_alive() and load.error is None, load.error
    duration = load.finished_at - load.started_at
    # the load was steady: 200 jobs/s, not a burst and not far behind schedule
    assert JOBS / RATE - 1 <= duration <= JOBS / RATE + 10, duration

    wait_for(lambda: r.hlen("test:runs") >= JOBS, 60, interval=0.2, message="all jobs run")
    runs = {k: int(v) for k, v in r.hgetall("test:runs").items()}
    lost = [f"j{n}" for n in range(JOBS) if f"j{n}" not in runs]
    twice = sorted(k for k, v in runs.items() if v > 1)
    print(
        f"\nrolling restart: jobs={JOBS} lost={len(lost)} duplicates={len(twice)} "
        f"load={duration:.1f}s max_producer_lag={load.max_lag:.2f}s "
        f"in_flight_at_sigterm={in_flight_at_sigterm} "
        + " ".join(
            f"[#{i + 1} drain {x['drain_s']:.2f}s ready {x['ready_s']:.2f}s "
            f"taking jobs {x['taking_jobs_s']:.2f}s]"
            for i, x in enumerate(replaced)
        )
    )
    assert in_flight_at_sigterm > 0, "the drains had nothing to finish: the test proves little"
    assert not lost, f"{len(lost)} jobs never ran, e.g. {lost[:5]}"
    assert not twice, f"{len(twice)} jobs ran twice, e.g. {twice[:5]}"
    assert len(runs) == JOBS

    # the replacements did a real share of the work, and stop as cleanly
    done = [_completed(port) for _, port, _ in pool]
    assert all(n > 100 for n in done), done
    drains = [_stop(worker) for worker, _, _ in pool]
    assert max(drains) < 30
    assert r.zcard("bananas:active") == 0, "no job is still leased"
