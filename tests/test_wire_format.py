"""docs/wire-format.md, written with raw redis commands as the SDKs do."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import redis
from support import WorkerFactory, wait_for


def sdk_record(
    job_id: str, name: str, payload: dict[str, object], priority: str = "normal", **extra: object
) -> str:
    now = datetime.now().astimezone().isoformat()
    record = {
        "id": job_id,
        "name": name,
        "description": "from the TypeScript SDK",
        "payload": payload,
        "status": "pending",
        "priority": priority,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,
        "max_retries": 3,
        "routing_key": "",
        **extra,
    }
    return json.dumps(record)


def push(r: redis.Redis, name: str, payload: dict[str, object], priority: str = "normal") -> str:
    job_id = str(uuid.uuid4())
    r.set(f"bananas:job:{job_id}", sdk_record(job_id, name, payload, priority))
    r.lpush(f"bananas:queue:{priority}", job_id)
    return job_id


def test_sdk_job_runs_and_result_matches_format(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start()
    job_id = str(uuid.uuid4())
    pubsub = r.pubsub()
    pubsub.subscribe(f"bananas:result:notify:{job_id}")
    r.set(f"bananas:job:{job_id}", sdk_record(job_id, "add", {"a": 20, "b": 22}))
    r.lpush("bananas:queue:normal", job_id)

    def notified() -> str | None:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        return message["data"] if message else None

    assert wait_for(notified, 10, message="notify message") == "completed"
    result = r.hgetall(f"bananas:result:{job_id}")
    assert result["status"] == "completed"
    assert json.loads(result["result"]) == 42
    assert int(result["duration_ms"]) >= 0  # as the SDKs parse it: int() / ParseInt
    datetime.fromisoformat(result["completed_at"].replace("Z", "+00:00"))
    assert 0 < r.ttl(f"bananas:result:{job_id}") <= 86400
    record = json.loads(r.get(f"bananas:job:{job_id}"))
    assert record["status"] == "completed" and record["attempts"] == 1
    assert record["description"] == "from the TypeScript SDK"  # SDK fields kept
    assert record["routing_key"] == ""


def test_sdk_failed_result(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start(MAX_RETRIES="0")
    job_id = str(uuid.uuid4())
    r.set(
        f"bananas:job:{job_id}", sdk_record(job_id, "broken_until_fixed", {"k": "x"}, max_retries=0)
    )
    r.lpush("bananas:queue:high", job_id)
    wait_for(lambda: r.hget(f"bananas:result:{job_id}", "status"), 10, message="result")
    result = r.hgetall(f"bananas:result:{job_id}")
    assert result["status"] == "failed"
    assert "broken until" in result["error"]
    datetime.fromisoformat(result["completed_at"])


def test_sdk_priorities_and_delayed_jobs(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start()
    ids = {p: push(r, "add", {"a": 1, "b": 1}, p) for p in ("high", "normal", "low")}
    job_id = str(uuid.uuid4())
    due = time.time() + 1.0
    r.set(
        f"bananas:job:{job_id}",
        sdk_record(
            job_id,
            "add",
            {"a": 2, "b": 2},
            scheduled_for=datetime.fromtimestamp(due).astimezone().isoformat(),
            status="scheduled",
        ),
    )
    r.zadd("bananas:queue:scheduled", {job_id: due})
    for jid in ids.values():
        wait_for(
            lambda jid=jid: r.hget(f"bananas:result:{jid}", "status") == "completed",
            10,
            message="priority job",
        )
    wait_for(lambda: r.hget(f"bananas:result:{job_id}", "result") == "4", 10, message="delayed job")
    completed_at = datetime.fromisoformat(r.hget(f"bananas:result:{job_id}", "completed_at"))
    assert completed_at.timestamp() >= due - 0.01


def test_sdk_jobs_queued_before_any_worker(workers: WorkerFactory, r: redis.Redis) -> None:
    """Jobs already waiting in the plain lists run once a worker starts."""
    workers.start().signal(15)  # registers the job types once, then leaves
    ids = [push(r, "add", {"a": i, "b": 0}) for i in range(50)]
    workers.start()
    for i, job_id in enumerate(ids):
        wait_for(
            lambda job_id=job_id: r.hget(f"bananas:result:{job_id}", "result"),
            10,
            message="queued SDK job",
        )
        assert r.hget(f"bananas:result:{job_id}", "result") == str(i)
