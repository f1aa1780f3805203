"""Concurrency limits, end to end (docs/control.md): real worker processes on
a real redis-server (and SQLite), the running count measured by the jobs
themselves (tests/apps/concurrency.py, a file under a lock). The broker
steps (acquire, release, waiters, expiry) are tests/conformance/test_concurrency.py."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import concurrency as conc
from apps.concurrency import app
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas.config import Settings

LEASE = "2s"


@pytest.fixture
def counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "counters"
    folder.mkdir()
    monkeypatch.setenv("TEST_CONC_DIR", str(folder))
    yield folder


def start(workers: WorkerFactory, counters: Path, n: int = 3, **env: str) -> None:
    for _ in range(n):
        workers.start(
            "apps.concurrency:app",
            TEST_CONC_DIR=str(counters),
            WORKER_CONCURRENCY="20",
            LEASE_TIMEOUT=LEASE,
            **env,
        )


def drain_others(n: int) -> float:
    started = time.monotonic()
    app.enqueue_many([app.spec("other", n=i) for i in range(n)])
    wait_for(lambda: conc.read("other")["done"] >= n, 60, message=f"{n} other jobs")
    return time.monotonic() - started


@both_brokers
def test_two_at_once_over_three_workers_while_others_flow(
    target: Backend, workers: WorkerFactory, counters: Path
) -> None:
    app.configure(Settings.load())
    start(workers, counters)
    alone = drain_others(300)  # the same workers, nothing capped: the baseline
    (counters / "other.json").unlink()
    began = time.monotonic()
    handles = app.enqueue_many([app.spec("capped", ms=200) for _ in range(30)])
    beside = drain_others(300)  # queued behind 30 capped jobs
    others_done = time.monotonic() - began
    wait_for(lambda: conc.read("capped")["done"] == 30, 60, message="30 capped jobs")
    capped_done = time.monotonic() - began
    got = conc.read("capped")
    assert got["max"] == 2, got  # never more than 2 at once, and 2 were used
    assert capped_done >= 30 * 0.2 / 2  # they ran two at a time
    # Nothing waits behind them: the others drain as fast as alone (slack
    # for a shared machine), long before the capped ones are through.
    assert beside < max(2 * alone, alone + 1.0), (alone, beside)
    assert others_done < capped_done / 2, (others_done, capped_done)
    view = target.view
    assert view.count("dead") == 0
    # Waiting cost them nothing: each ran once, on its first attempt.
    assert {view.record(h.id)["attempts"] for h in handles} == {1}
    assert {r.status for r in view.results([h.id for h in handles]) if r} == {"completed"}
    print(f"\nothers alone {alone:.2f}s, beside capped {beside:.2f}s; capped {capped_done:.2f}s")


@both_brokers
def test_per_key_caps_hold_per_key(target: Backend, workers: WorkerFactory, counters: Path) -> None:
    app.configure(Settings.load())
    start(workers, counters)
    specs = [
        app.spec("per_key", customer=c, ms=150, _concurrency_key=c)
        for _ in range(6)
        for c in ("a", "b", "c")
    ]
    app.enqueue_many(specs)
    wait_for(lambda: conc.read("per_key")["done"] == 18, 60, message="18 keyed jobs")
    for c in ("a", "b", "c"):
        assert conc.read(f"key-{c}")["max"] == 1, c
    assert conc.read("per_key")["max"] >= 2  # the keys ran side by side


@both_brokers
def test_a_killed_holders_slot_is_back_within_the_lease(
    target: Backend, workers: WorkerFactory, counters: Path
) -> None:
    app.configure(Settings.load())
    holder = workers.start("apps.concurrency:app", TEST_CONC_DIR=str(counters), LEASE_TIMEOUT=LEASE)
    app.enqueue("solo", hang=True)
    hung = counters / "solo-hung.json"
    wait_for(hung.exists, 20, message="the hanging job")
    start(workers, counters, n=2)
    app.enqueue("solo", hang=False)
    # The waiter is parked (not running, not dead, no attempt charged).
    wait_for(lambda: target.view.count("scheduled", "solo") == 1, 20, message="a parked waiter")
    assert conc.read("solo")["now"] == 1
    assert int(hung.read_text()) == holder.proc.pid
    killed = time.time()
    os.killpg(holder.proc.pid, signal.SIGKILL)
    conc.forget_running("solo")  # its slot stays held until it expires
    wait_for(lambda: conc.read("solo")["done"] >= 1, 20, message="a solo job after the kill")
    back = min(s for s in conc.read("solo")["starts"] if s > killed) - killed
    lease = 2.0
    assert back <= lease + 0.6, back  # the lease, plus the due move and a fetch
    wait_for(lambda: conc.read("solo")["done"] == 2, 20, message="both solo jobs")
    assert conc.read("solo")["max"] == 1
    print(f"\nslot back {back:.2f}s after the SIGKILL (lease {lease}s)")
