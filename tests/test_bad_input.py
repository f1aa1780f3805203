"""Bad records, payloads and types are dead-lettered with a reason; the worker lives."""

from __future__ import annotations

import json
import random
import uuid

import redis
from apps.core import app
from support import WorkerFactory, wait_for


def test_200_malformed_records_are_dead_lettered(workers: WorkerFactory, r: redis.Redis) -> None:
    w = workers.start()
    rng = random.Random(7)
    expected: dict[str, str] = {}

    def bad(kind: str, value: str | None) -> None:
        job_id = f"bad-{kind}-{uuid.uuid4()}"
        if value is not None:
            r.set(f"bananas:job:{job_id}", value.replace("$ID", job_id))
        r.lpush("bananas:queue:normal", job_id)
        expected[job_id] = kind

    for i in range(200):
        kind = i % 8
        if kind == 0:
            bad("json", "{not json" + "x" * rng.randint(0, 20))
        elif kind == 1:
            bad("noname", '{"id": "$ID", "payload": {}, "priority": "normal"}')
        elif kind == 2:
            bad("unknown", '{"id": "$ID", "name": "no_such_job", "payload": {}}')
        elif kind == 3:
            bad("norecord", None)
        elif kind == 4:
            bad("nopayload", '{"id": "$ID", "name": "add", "priority": "normal"}')
        elif kind == 5:
            bad("args", '{"id": "$ID", "name": "add", "payload": {"x": 1}, "priority": "normal"}')
        elif kind == 6:
            bad("array", "[1, 2, 3]")
        else:
            bad("types", '{"id": "$ID", "name": "add", "payload": [1], "attempts": "x"}')
    good = [h.id for h in app.enqueue_many([("add", {"a": i, "b": 1}) for i in range(100)])]

    wait_for(lambda: r.zcard("bananas:dead") == 200, 30, message="200 dead letters")
    infos = {k: json.loads(v) for k, v in r.hgetall("bananas:dead:info").items()}
    assert set(infos) == set(expected)
    reasons = {kind: set() for kind in expected.values()}
    for job_id, kind in expected.items():
        assert infos[job_id]["reason"], job_id
        reasons[kind].add(infos[job_id]["reason"].split(":")[0])
    assert any("unknown job type" in x for x in reasons["unknown"])
    assert any("no job record" in x for x in reasons["norecord"])
    assert any("not a JSON object" in x for x in reasons["json"])
    assert any("payload does not match" in x for x in reasons["args"])
    for job_id in good:
        wait_for(
            lambda job_id=job_id: r.hget(f"bananas:result:{job_id}", "status"),
            10,
            message="good job",
        )
        assert r.hget(f"bananas:result:{job_id}", "status") == "completed"
    assert w.proc.poll() is None
    assert app.enqueue("add", a=1, b=1).result(timeout=10) == 2


def test_unserializable_result_dead_letters(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start()
    app.configure(app.settings.__class__.load())
    h = app.enqueue("unserializable")
    wait_for(lambda: r.zscore("bananas:dead", h.id) is not None, 10, message="dead letter")
    assert "not JSON-serializable" in json.loads(r.hget("bananas:dead:info", h.id))["reason"]


def test_oversized_foreign_record_dead_letters(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start(MAX_PAYLOAD_BYTES="1000")
    job_id = "huge"
    payload = {"a": "x" * 5000, "b": 1}
    r.set(f"bananas:job:{job_id}", json.dumps({"id": job_id, "name": "add", "payload": payload}))
    r.lpush("bananas:queue:low", job_id)
    wait_for(lambda: r.zscore("bananas:dead", job_id) is not None, 10, message="dead letter")
    assert "MAX_PAYLOAD_BYTES" in json.loads(r.hget("bananas:dead:info", job_id))["reason"]
