"""Registry entries as the workers page shows them: WorkerInfo's codec checks
the fields, the row adds ages and clamps utilization (no broker needed)."""

from __future__ import annotations

from typing import Any

import pytest

from bananas.dashboard.fleet import normalize_worker
from bananas.vocabulary import WorkerInfo

NOW = 1_000_000.0
ENTRY: dict[str, Any] = {
    "id": "w-1",
    "host": "box",
    "pid": 42,
    "mode": "default",
    "group": "web",
    "priorities": ["high", "normal"],
    "concurrency": 8,
    "in_flight": 3,
    "utilization": 1.7,
    "started_at": NOW - 60,
    "last_seen": NOW - 2,
    "scheduler": True,
    "draining": False,
    "state": "running",
}


def test_a_dict_and_a_worker_info_give_the_same_row() -> None:
    row = normalize_worker(ENTRY, NOW)
    assert row == normalize_worker(WorkerInfo.from_dict(ENTRY), NOW)
    assert (row.heartbeat_age, row.uptime, row.utilization) == (2.0, 60.0, 1.0)
    assert row.scheduler_loop and not row.is_scheduler and row.kind == "worker"


@pytest.mark.parametrize(
    "bad",
    [
        {"pid": "not a number", "concurrency": [], "utilization": "x", "last_seen": None},
        {"pid": True, "concurrency": {}, "utilization": float("nan"), "last_seen": "soon"},
    ],
)
def test_mistyped_fields_read_as_empty(bad: dict[str, Any]) -> None:
    row = normalize_worker({**ENTRY, **bad}, NOW)
    assert (row.pid, row.concurrency, row.utilization, row.heartbeat_age) == (
        None,
        None,
        None,
        None,
    )


def test_a_scheduler_only_entry_is_a_scheduler_whatever_its_kind_says() -> None:
    row = normalize_worker({**ENTRY, "kind": "worker", "mode": "scheduler-only"}, NOW)
    assert row.is_scheduler
    assert normalize_worker({"id": None}, NOW).id == "?"
