"""`bananas job ID [--json]` against a real worker on both brokers: a finished
job's state, type, priority, attempts, timestamps, payload (cut in the text
form only), result; a dead job's error and traceback; an unknown id. (A
running job's lease holder and progress: tests/test_progress.py.)"""

from __future__ import annotations

import orjson
import pytest
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import Bananas
from bananas.cli.job import PAYLOAD_CHARS
from bananas.config import Settings

pytestmark = pytest.mark.timeout(120)


@both_brokers
def test_a_finished_job_inspected(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.progress:app")
    text = "x" * (PAYLOAD_CHARS + 500)
    handle = app.enqueue("echo", {"text": text}, _priority="high")
    assert handle.result(timeout=30) == {"length": len(text)}

    shown = workers.cli("job", handle.id, "--json")
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert data["id"] == handle.id and data["state"] == "completed"
    assert (data["type"], data["priority"], data["attempts"]) == ("echo", "high", 1)
    assert data["payload"] == {"text": text}  # whole in --json
    assert data["result"] == {"length": len(text)}
    assert data["lease"] is None and data["progress"] is None and data["error"] is None
    assert data["enqueued_at"] <= data["started_at"] <= data["finished_at"]
    assert "route" not in data  # the record carries none

    plain = workers.cli("job", handle.id)
    assert plain.returncode == 0, plain.stderr
    lines = dict(line.split(None, 1) for line in plain.stdout.splitlines() if " " in line)
    assert lines["state"] == "completed"
    assert lines["type"] == "echo" and lines["priority"] == "high"
    assert lines["attempts"].startswith("1")
    for label in ("enqueued", "started", "finished"):
        assert lines[label].endswith("Z"), lines
    assert lines["result"] == f'{{"length":{len(text)}}}'
    assert lines["payload"].endswith(f"… ({len(text) + 11} characters; --json shows all)")
    assert len(lines["payload"]) < PAYLOAD_CHARS + 100


@both_brokers
def test_a_dead_job_shows_its_error_and_traceback(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.progress:app")
    handle = app.enqueue("progress_then_fail", {"k": "d"})
    wait_for(lambda: target.view.state(handle.id) == "dead", 30, message="the job dead")
    plain = workers.cli("job", handle.id)
    assert plain.returncode == 0, plain.stderr
    assert "state      dead" in plain.stdout
    assert "error      RuntimeError: broke at 70% (d)" in plain.stdout
    assert "progress   70% almost" in plain.stdout
    assert "\ntraceback\n" in plain.stdout
    assert 'raise RuntimeError(f"broke at 70% ({k})")' in plain.stdout
    data = orjson.loads(workers.cli("job", handle.id, "--json").stdout)
    assert data["error"] == "RuntimeError: broke at 70% (d)"
    assert "Traceback (most recent call last)" in data["traceback"]
    assert data["dead_reason"] and data["progress"]["fraction"] == 0.7


@both_brokers
def test_an_unknown_job_is_a_clear_error(workers: WorkerFactory, target: Backend) -> None:
    for args in (("job", "no-such-job"), ("job", "no-such-job", "--json")):
        shown = workers.cli(*args)
        assert shown.returncode == 1, shown
        assert shown.stdout == ""
        assert shown.stderr.startswith("bananas: error: no job 'no-such-job' on this broker")
        assert "RESULT_TTL" in shown.stderr
