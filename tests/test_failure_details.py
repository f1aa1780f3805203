"""A failed job explained wherever one looks: JobFailed, the worker's log,
`bananas dlq list` and `bananas dlq show`, on both brokers."""

from __future__ import annotations

import asyncio
import json

import pytest
from apps.core import add, app, broken_until_fixed
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import JobFailed
from bananas.brokers.records import DeadInfo
from bananas.cli.dlq import PAYLOAD_SHOWN_BYTES, dead_letter_view, render_dead_letter
from bananas.config import Settings

ERROR = "ValueError: {k} is broken until test:fixed is set"
REASON = "failed 3 times (max_retries=2)"


@pytest.fixture(autouse=True)
def fresh_app(target: Backend) -> None:
    app.configure(Settings.load())


@both_brokers
def test_a_dead_letter_explained_everywhere(workers: WorkerFactory) -> None:
    w = workers.start()
    handle = broken_until_fixed.enqueue(k="d1")
    with pytest.raises(JobFailed) as failed:
        handle.result(timeout=20)
    exc = failed.value
    assert str(exc) == f"job {handle.id} failed: {ERROR.format(k='d1')}"  # as it always was
    assert (exc.job_id, exc.error) == (handle.id, ERROR.format(k="d1"))
    assert exc.reason == REASON
    assert exc.attempts == 3
    assert exc.traceback.startswith("Traceback") and "raise ValueError" in exc.traceback

    async def waited() -> JobFailed:
        try:
            await handle.wait(timeout=5)
        except JobFailed as err:
            return err
        finally:
            await app.aclose()
        raise AssertionError("wait() returned")

    again = asyncio.run(waited())
    assert (again.reason, again.attempts, again.traceback) == (REASON, 3, exc.traceback)

    # The worker logs the dead letter after the broker stored it (and woke result()).
    [dead_line] = wait_for(
        lambda: [e for e in w.events("job.dead_lettered") if e["job_id"] == handle.id],
        10,
        message="the job.dead_lettered line",
    )
    assert dead_line["traceback"] == exc.traceback  # the log line carries it too
    assert all("traceback" not in e for e in w.events("job.retried"))

    listed = workers.cli("dlq", "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(handle.id)]
    assert row.endswith(f"{REASON}: {ERROR.format(k='d1')}")

    shown = workers.cli("dlq", "show", handle.id)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"dead letter {handle.id}" in text
    for label, value in [
        ("type", "broken_until_fixed"),
        ("reason", REASON),
        ("error", ERROR.format(k="d1")),
        ("attempts", "3 (max_retries=2)"),
        ("payload", '{"k":"d1"}'),
    ]:
        assert f"  {label:<9} {value}\n" in text, text
    for label in ("created", "failed"):
        assert f"  {label:<9} 20" in text, text  # ISO timestamps
    assert "traceback:\n  Traceback (most recent call last):" in text
    assert "raise ValueError" in text

    as_json = json.loads(workers.cli("dlq", "show", handle.id, "--json").stdout)
    assert as_json["reason"] == REASON and as_json["attempts"] == 3
    assert as_json["error"] == ERROR.format(k="d1")
    assert as_json["traceback"] == exc.traceback
    assert as_json["payload"] == {"k": "d1"} and as_json["payload_truncated"] is False
    assert as_json["created_at"] and as_json["failed_at"] and as_json["updated_at"]

    missing = workers.cli("dlq", "show", "no-such-id")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "bananas: error: job no-such-id is not in the dead letters (bananas dlq list shows them)"
    )


@both_brokers
def test_replay_and_delete_say_what_they_did(workers: WorkerFactory) -> None:
    w = workers.start()
    handle = broken_until_fixed.enqueue(k="d2")
    with pytest.raises(JobFailed):
        handle.result(timeout=20)
    w.stop()

    unknown = workers.cli("dlq", "replay", "no-such-id")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "no-such-id: not in the dead-letter queue"
    assert "delete it" not in unknown.stderr
    assert unknown.stdout.strip() == "replayed 0 of 1"

    deleted = workers.cli("dlq", "delete", handle.id)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted 1 of 1"
    assert "deleteed" not in deleted.stdout


@both_brokers
def test_info_decodes_the_result_as_result_does(workers: WorkerFactory) -> None:
    workers.start()
    handle = add.enqueue(a=2, b=3)
    assert handle.result(timeout=10) == 5
    info = handle.info()
    assert info is not None
    assert info.decoded == 5  # what result() returned
    assert info.result == b"5"  # the stored JSON text, as before
    assert info.value() == 5 and info.status == "completed"


def test_a_big_payload_is_cut_in_dlq_show() -> None:
    big = {"blob": "x" * (3 * PAYLOAD_SHOWN_BYTES)}
    raw = json.dumps({"id": "b", "name": "t", "payload": big, "attempts": 1}).encode()
    view = dead_letter_view("b", DeadInfo("bad input", "bad input"), raw)
    assert view["payload_truncated"] is True and view["payload"] is None
    assert len(view["payload_head"]) == PAYLOAD_SHOWN_BYTES
    assert view["payload_bytes"] == len(json.dumps(big, separators=(",", ":")))
    text = render_dead_letter(view)
    assert f"(first {PAYLOAD_SHOWN_BYTES} of {view['payload_bytes']} bytes)" in text
    assert len(text) < 2 * PAYLOAD_SHOWN_BYTES
    assert "error" not in text.replace("reason    bad input", "")  # said once, as the reason
