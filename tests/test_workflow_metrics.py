"""`bananas_workflows{state=...}` on a real worker's /metrics, on both
brokers: a running, a completed, a failed and a cancelled workflow, each
counted in its state, the running one moving to cancelled when cancelled."""

from __future__ import annotations

import re
import urllib.request

import pytest
from support import Backend, WorkerFactory, both_brokers, free_port, wait_for

from bananas import Bananas, WorkflowFailed, chain, chord
from bananas.config import Settings

pytestmark = pytest.mark.timeout(120)


def _workflows(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^bananas_workflows\{state="(\w+)"\} (\S+)$', text, re.M)
    }


@both_brokers
def test_workflow_counts_per_state(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    port = free_port()
    workers.start("apps.workflows:app", "--concurrency", "4", HEALTH_PORT=str(port))
    assert chain(app.spec("add", x=1), app.spec("add", x=2)).enqueue().result(30) == 3
    failed = chord([app.spec("boom", k="m")], app.spec("collect", k="m")).enqueue()
    with pytest.raises(WorkflowFailed):
        failed.result(30)
    stopped = chain(app.spec("slow", k="c", seconds=30), app.spec("ident", i=1)).enqueue()
    wait_for(lambda: target.sink.hget("test:started", "c"), 20, message="the slow step running")
    assert stopped.cancel() == "cancelled"
    running = chain(app.spec("slow", k="r", seconds=30), app.spec("ident", i=2)).enqueue()
    wait_for(lambda: target.sink.hget("test:started", "r"), 20, message="the other running")
    _expect(port, {"running": 1.0, "completed": 1.0, "failed": 1.0, "cancelled": 1.0})
    assert running.cancel() == "cancelled"
    _expect(port, {"running": 0.0, "completed": 1.0, "failed": 1.0, "cancelled": 2.0})


def _expect(port: int, expected: dict[str, float]) -> None:
    wait_for(lambda: _workflows(port) == expected, 10, interval=0.2, message=f"{expected}")
