"""Chaos scenario 6: poison input straight into the queue keys, and
property-based tests of the job codec and of configuration parsing."""

from __future__ import annotations

import json
import random
import uuid

import orjson
import redis
from apps.chaos import app
from hypothesis import given, settings
from hypothesis import strategies as st
from support import WorkerFactory, wait_for

from bananas import Bananas, JobSpec
from bananas.config import Settings
from bananas.errors import ConfigError, InvalidRecord
from bananas.job import decode_record
from chaos.conftest import scale


def poison(rng: random.Random, job_id: str) -> bytes | None:
    kind = rng.randrange(8)
    good = {"id": job_id, "name": "work", "payload": {"k": job_id, "ms": 1}, "priority": "normal"}
    if kind == 0:
        return rng.randbytes(rng.randint(1, 200))
    if kind == 1:
        text = json.dumps(good)
        return text[: rng.randint(1, len(text) - 1)].encode()
    if kind == 2:
        wrong = {
            "id": [None, 42, ""],
            "name": [None, 42, "", ["work"]],
            "payload": [None, 42, [], "x"],
            "priority": ["urgent", 42],
            "attempts": [-1, "x", True],
            "max_retries": [-1, "x", 1.5],
        }
        field = rng.choice(sorted(wrong))
        return json.dumps({**good, field: rng.choice(wrong[field])}).encode()
    if kind == 3:
        return json.dumps({**good, "name": f"no_such_{rng.randint(0, 9)}"}).encode()
    if kind == 4:
        return json.dumps({**good, "payload": {"k": "x" * 2_000_000, "ms": 1}}).encode()
    if kind == 5:
        nested = "[" * 5000 + "]" * 5000
        head = json.dumps({"id": job_id, "name": "work"})[:-1]
        return f'{head}, "payload": {{"k": {nested}, "ms": 1}}}}'.encode()
    if kind == 6:
        return None  # an id with no record
    return json.dumps({**good, "payload": {"k": job_id, "ms": 1, "unexpected": True}}).encode()


def test_poison_records_are_dead_lettered(
    workers: WorkerFactory, r: redis.Redis, chaos_report: dict[str, object]
) -> None:
    n = scale(1000, 400)
    pool = [
        workers.start("apps.chaos:app", "--concurrency", "20", LOG_LEVEL="warning")
        for _ in range(2)
    ]
    rng = random.Random(11)
    app.configure(Settings.load())
    bad_ids = []
    good = 0
    for i in range(n):
        job_id = f"poison-{i}-{uuid.uuid4().hex[:6]}"
        value = poison(rng, job_id)
        if value is not None:
            r.set(f"bananas:job:{job_id}", value)
        # Half onto the SDK lists, half straight onto a routed ready list.
        target = (
            f"bananas:queue:{rng.choice(['high', 'normal', 'low'])}"
            if i % 2
            else "bananas:ready:normal:work"
        )
        r.lpush(target, job_id)
        bad_ids.append(job_id)
        if i % 10 == 0:
            app.enqueue("work", k=f"good-{i}", ms=1)
            good += 1
    wait_for(
        lambda: r.zcard("bananas:dead") >= len(bad_ids),
        60,
        interval=0.2,
        message="every poison record dead-lettered",
    )
    infos = r.hmget("bananas:dead:info", bad_ids)
    assert all(info and json.loads(info)["reason"] for info in infos)
    wait_for(
        lambda: sum(1 for i in range(0, n, 10) if r.hget("test:runs", f"good-{i}")) == good,
        30,
        message="good jobs kept flowing",
    )
    assert all(w.proc.poll() is None for w in pool), "a worker died"
    reasons: dict[str, int] = {}
    for info in infos:
        reason = json.loads(info)["reason"].split("'")[0].split(":")[0].split(" is ")[0][:32]
        reasons[reason] = reasons.get(reason, 0) + 1
    chaos_report.update(
        poison=len(bad_ids), dead_lettered=r.zcard("bananas:dead"), good_jobs=good, reasons=reasons
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | json_values.map(orjson.dumps))
def test_decode_record_only_raises_invalid_record(raw: bytes) -> None:
    try:
        record = decode_record(raw)
    except InvalidRecord as exc:
        assert str(exc)
    else:
        assert record.name and isinstance(record.payload, dict)


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=30),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    st.sampled_from(["high", "normal", "low"]),
    st.none() | st.integers(0, 100),
)
def test_record_roundtrip(
    name: str, payload: dict[str, object], priority: str, max_retries: int | None
) -> None:
    client = Bananas(settings=Settings())  # encodes as enqueue does, no broker
    spec = JobSpec(name, payload, priority, job_id="x", max_retries=max_retries)
    raw = client.build_jobs([spec])[0].record
    record = decode_record(raw, expected_id="x")
    assert (record.name, record.payload, record.priority) == (name, payload, priority)
    assert record.max_retries(7) == (7 if max_retries is None else max_retries)


VARIABLES = [
    "WORKER_MODE",
    "WORKER_CONCURRENCY",
    "WORKER_PRIORITIES",
    "WORKER_JOB_TYPES",
    "ENABLE_SCHEDULER",
    "SCHEDULER_INTERVAL",
    "JOB_TIMEOUT",
    "MAX_RETRIES",
    "SHUTDOWN_TIMEOUT",
    "HEALTH_PORT",
    "REDIS_URL",
    "CONCURRENCY",
    "WORKER_TYPE",
    "GROUP_ID",
    "WORKER_PRIORITY_WEIGHTS",
    "LOG_LEVEL",
    "RESULT_TTL",
]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(VARIABLES), st.text(max_size=20), max_size=4))
def test_config_only_raises_config_error(env: dict[str, str]) -> None:
    try:
        Settings.load(env=env)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and any(v in message for v in VARIABLES)
