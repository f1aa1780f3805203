"""Progress from a real worker process, for each executor kind, on both
brokers: a handler's `current_job().set_progress` is seen live through
`handle.progress()` and `bananas job`, and its last value is stored before the
job's outcome (read right after `result()` returns, with no wait)."""

from __future__ import annotations

import orjson
import pytest
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import Bananas
from bananas.config import Settings
from bananas.context import JobContext
from bananas.progress import MAX_PROGRESS_MESSAGE

pytestmark = pytest.mark.timeout(120)


@both_brokers
@pytest.mark.parametrize("kind", ["async", "thread", "process"])
def test_progress_from_each_executor_is_seen_live_and_last_before_the_result(
    workers: WorkerFactory, target: Backend, kind: str
) -> None:
    app = Bananas(settings=Settings.load())
    worker = workers.start("apps.progress:app", "--concurrency", "2")
    handle = app.enqueue(f"progress_{kind}", {"k": kind})

    def live() -> bool:
        found = handle.progress()
        return found is not None and found.fraction == 0.4

    wait_for(live, 30, message=f"the {kind} job's 40% progress")
    progress = handle.progress()
    assert progress is not None
    assert (progress.message, progress.attempt) == ("resized 40 of 100 images", 1)
    shown = workers.cli("job", handle.id, "--json")
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert data["state"] == "running"
    assert data["progress"]["fraction"] == 0.4
    assert data["lease"]["worker"].split(":")[-2] == str(worker.pid), data["lease"]
    text = workers.cli("job", handle.id)
    assert "40% resized 40 of 100 images" in text.stdout, text.stdout

    target.sink.hset("test:go", kind, "1")
    assert handle.result(timeout=30) == kind
    final = handle.progress()  # no wait: written before the job completed
    assert final is not None and (final.fraction, final.message) == (1.0, "done")


def test_a_failing_job_keeps_its_last_progress(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.progress:app")
    handle = app.enqueue("progress_then_fail", {"k": "f"})
    wait_for(lambda: target.view.state(handle.id) == "dead", 30, message="the job dead")
    found = handle.progress()
    assert found is not None and (found.fraction, found.message) == (0.7, "almost")


@pytest.mark.parametrize(
    ("fraction", "message", "error", "says"),
    [
        (1.5, "", ValueError, "from 0 to 1"),
        (-0.1, "", ValueError, "from 0 to 1"),
        (float("nan"), "", ValueError, "from 0 to 1"),
        ("0.5", "", TypeError, "must be a number from 0 to 1"),
        (True, "", TypeError, "got bool True"),
        (0.5, 42, TypeError, "message must be a str, got int 42"),
    ],
)
def test_bad_progress_is_a_clear_error(
    fraction: object, message: object, error: type[Exception], says: str
) -> None:
    job = JobContext("j", "t", "normal", 1)
    with pytest.raises(error, match=says):
        job.set_progress(fraction, message)  # type: ignore[arg-type]


def test_a_long_message_is_cut() -> None:
    from bananas.progress import check_progress

    fraction, message = check_progress(1, "x" * 10_000)
    assert fraction == 1.0 and len(message) == MAX_PROGRESS_MESSAGE and message.endswith("…")
