"""Result hashes and job records Bananas writes, checked field by field
against the tables of docs/wire-format.md (parsed in tests/wire_doc.py) and
read as the SDKs read them, on every way a job ends: completed, failed,
retried then completed, dead-lettered by the worker, by lease recovery after
MAX_STALLS and by the router. Real redis-server, real worker processes."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import datetime

import redis
import wire_doc
from apps.core import app
from support import Backend, BrokerView, WorkerFactory, both_brokers, wait_for

from bananas.brokers.sqlite_db import Tables
from bananas.config import Settings

BANANAS_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")  # the doc's own form


def _enqueue_endings() -> dict[str, str]:
    """One job per way of ending on a worker; ids by ending."""
    app.configure(Settings.load())
    return {
        "completed": app.enqueue("add", {"a": 20, "b": 22}).id,
        "retried_then_completed": app.enqueue("flaky", {"k": "f", "failures": 2}).id,
        "failed": app.enqueue("broken_until_fixed", {"k": "once"}, _max_retries=0).id,
        "dead_after_retries": app.enqueue("broken_until_fixed", {"k": "thrice"}).id,
    }


def _finished(view: BrokerView, ids: dict[str, str]) -> None:
    for ending, job_id in ids.items():
        wait_for(lambda job_id=job_id: view.result(job_id), 20, message=f"{ending} result")


def _check_sdk_reads(job_id: str, data: dict[str, str], status: str) -> dict[str, object]:
    wire_doc.check_result_hash(data)
    assert data["status"] == status
    assert BANANAS_TIME.fullmatch(data["completed_at"]), data["completed_at"]
    parsed = wire_doc.python_sdk_result(job_id, data)
    ms, _ = wire_doc.go_reader_result(data)
    assert parsed["duration_ms"] == ms == int(data["duration_us"]) // 1000
    return parsed


def test_result_hashes_of_every_ending_match_the_doc(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    workers.start()
    ids = _enqueue_endings()
    view = BrokerView(workers.redis_url)
    try:
        _finished(view, ids)
        for ending, job_id in ids.items():
            data = r.hgetall(f"bananas:result:{job_id}")
            status = "completed" if "completed" in ending else "failed"
            parsed = _check_sdk_reads(job_id, data, status)
            if status == "completed":
                assert parsed["result"] == (42 if ending == "completed" else 3)
            else:
                assert "broken until" in str(parsed["error"])
            record = json.loads(r.get(f"bananas:job:{job_id}"))
            wire_doc.check_record(record)
            wire_doc.python_sdk_job(record)
            assert record["status"] == status
            # Bananas' own reader takes the microseconds, not the whole milliseconds.
            found = view.result(job_id)
            assert found is not None
            assert found.duration_ms == int(data["duration_us"]) / 1000
    finally:
        view.close()


def _sdk_record(job_id: str, **fields: object) -> str:
    now = datetime.now().astimezone().isoformat()
    return json.dumps(
        {
            "id": job_id,
            "name": "add",
            "description": "",
            "payload": {"a": 1, "b": 2},
            "status": "pending",
            "priority": "normal",
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
            "max_retries": 3,
            "error": "",
            "routing_key": "",
            **fields,
        }
    )


def test_router_dead_letters_write_documented_results(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    workers.start()
    unroutable = {
        "no_record": None,
        "bad_priority": _sdk_record("", priority="urgent"),
        "unknown_type": _sdk_record("", name="nobody_handles_this"),
    }
    ids: dict[str, str] = {}
    for case, raw in unroutable.items():
        job_id = ids[case] = str(uuid.uuid4())
        if raw is not None:
            r.set(f"bananas:job:{job_id}", raw.replace('"id": ""', f'"id": "{job_id}"'))
        r.lpush("bananas:queue:normal", job_id)
    for case, job_id in ids.items():
        wait_for(
            lambda job_id=job_id: r.hget(f"bananas:result:{job_id}", "status"),
            10,
            message=f"{case} result",
        )
        data = r.hgetall(f"bananas:result:{job_id}")
        parsed = _check_sdk_reads(job_id, data, "failed")
        assert parsed["duration_ms"] == 0 and data["duration_us"] == "0"


def test_dead_lettered_by_lease_recovery_writes_documented_result(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    env = {"LEASE_TIMEOUT": "1s", "MAX_STALLS": "1"}
    app.configure(Settings.load())
    job_id = app.enqueue("suicide", {"k": "s"}).id
    worker = workers.start(**env)
    wait_for(lambda: worker.proc.poll() is not None, 20, message="the job killing its worker")
    workers.start(**env)  # its recoverer dead-letters the job at MAX_STALLS=1
    wait_for(lambda: r.hget(f"bananas:result:{job_id}", "status"), 20, message="dead letter")
    data = r.hgetall(f"bananas:result:{job_id}")
    parsed = _check_sdk_reads(job_id, data, "failed")
    assert "MAX_STALLS=1" in str(parsed["error"])
    wait_for(
        lambda: json.loads(r.get(f"bananas:job:{job_id}"))["status"] == "failed",
        10,
        message="record marked failed",
    )
    record = json.loads(r.get(f"bananas:job:{job_id}"))
    wire_doc.check_record(record)
    wire_doc.python_sdk_job(record)


def test_reader_prefers_microseconds_and_reads_sdk_hashes(r: redis.Redis, redis_url: str) -> None:
    """Hashes in the forms the doc gives: Bananas' (both durations), the Go
    worker's (integer ms, RFC 3339 without a fraction), an older Bananas' ("12.346")."""
    hashes = {
        "bananas": ({"duration_ms": "1", "duration_us": "1045"}, 1.045),
        "go_sdk": ({"duration_ms": "1045"}, 1045.0),
        "old_bananas": ({"duration_ms": "12.346"}, 12.346),
    }
    view = BrokerView(redis_url)
    try:
        for writer, (durations, expected) in hashes.items():
            job_id = f"{writer}-{uuid.uuid4()}"
            r.hset(
                f"bananas:result:{job_id}",
                mapping={
                    "status": "completed",
                    "completed_at": "2026-01-02T03:04:05Z",
                    "result": "42",
                    **durations,
                },
            )
            found = view.result(job_id)
            assert found is not None and found.status == "completed", writer
            assert found.duration_ms == expected, writer
            assert found.value() == 42
    finally:
        view.close()


@both_brokers
def test_results_read_the_same_on_both_brokers(workers: WorkerFactory, target: Backend) -> None:
    """Through Bananas' reader, and on SQLite in the stored row (the doc's
    SQLite table): the same status words, timestamp form and durations to the
    microsecond."""
    workers.start()
    ids = _enqueue_endings()
    view = target.view
    _finished(view, ids)
    for ending, job_id in ids.items():
        found = view.result(job_id)
        assert found is not None
        assert found.status == ("completed" if "completed" in ending else "failed")
        assert BANANAS_TIME.fullmatch(found.completed_at)
        us = found.duration_ms * 1000
        assert us >= 0 and abs(us - round(us)) < 1e-6, found.duration_ms  # whole microseconds
    if target.name == "sqlite":
        columns = wire_doc.sqlite_result_columns()
        with sqlite3.connect(target.url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            for job_id in ids.values():
                row = conn.execute(
                    f"SELECT * FROM {Tables('bananas').results} WHERE id = ?", (job_id,)
                ).fetchone()
                for name, column in columns.items():
                    if row[name] is not None:
                        column.check(row[name], in_hash=False)
