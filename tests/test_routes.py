"""Named routes: a route is a pool of work a worker serves only when it lists
the route in WORKER_ROUTING_KEYS. Real redis-server (and a SQLite file where
`both_brokers`), real worker processes; the test app records which pool ran
each job (apps/routed.py)."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from apps.routed import app, work
from support import Backend, BrokerView, WorkerFactory, both_brokers, free_port, wait_for
from test_wire_format import sdk_record

from bananas import Bananas
from bananas.config import Settings
from bananas.errors import BananasError, ConfigError

APP = "apps.routed:app"


def enqueue(specs: list[tuple[str, dict[str, object], dict[str, object]]]) -> list[str]:
    app.configure(Settings.load())
    return [h.id for h in app.enqueue_many([app.spec(n, p, **o) for n, p, o in specs])]


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def push_sdk(url: str, route: str) -> list[tuple[str, str, dict[str, object]]]:
    """300 SDK-format records of `route` ('' for none): half LPUSHed onto the
    plain list (submit_job_with_route), half onto the list the Go scheduler
    moves due jobs of the route to (bananas:route:{key}:queue:{priority})."""
    r = redis.Redis.from_url(url)
    out: list[tuple[str, str, dict[str, object]]] = []
    for i in range(300):
        job_id = str(uuid.uuid4())
        k = f"sdk-{route or 'none'}-{i}"
        r.set(f"bananas:job:{job_id}", sdk_record(job_id, "work", {"k": k}, routing_key=route))
        if i % 2:
            r.lpush("bananas:queue:normal", job_id)
        else:
            r.lpush(f"bananas:route:{route or 'default'}:queue:normal", job_id)
        out.append((k, "work", {}))
    r.close()
    return out


def test_route_names_are_checked_where_they_enter() -> None:
    other = Bananas()
    with pytest.raises(BananasError, match=r"invalid route name 'g pu'.*letters, digits"):
        other.job(route="g pu")(lambda: None)
    with pytest.raises(BananasError, match="is a priority, not a route name"):
        other.job(route="high")(lambda: None)
    with pytest.raises(BananasError, match=r"_route: invalid route name 'x/y'"):
        app.spec("work", {"k": "1"}, _route="x/y")
    with pytest.raises(BananasError, match="invalid route name"):
        app.spec("work", {"k": "1"}, _route="r" * 65)
    with pytest.raises(ConfigError, match=r"WORKER_ROUTING_KEYS='gpu,a:b' is invalid"):
        Settings.load({"WORKER_ROUTING_KEYS": "gpu,a:b"})
    with pytest.raises(ConfigError, match="listed twice"):
        Settings.load({"WORKER_ROUTING_KEYS": "gpu,gpu"})
    assert Settings.load({}).routing_keys == ("default",)
    assert Settings.load({"WORKER_ROUTING_KEYS": " gpu , default"}).routing_keys == (
        "gpu",
        "default",
    )
    assert app.handlers["work"].route is None and app.handlers["render"].route == "gpu"
    assert work.options(route="gpu").spec(k="1").route == "gpu"
    assert work.options(route="default").spec(k="1").route is None  # default: no field
    with pytest.raises(BananasError, match="invalid route name"):
        work.options(route="").spec(k="1")


@both_brokers
def test_each_job_runs_once_on_a_worker_of_its_route(
    workers: WorkerFactory, target: Backend
) -> None:
    gpu = [(f"render-{i}", "render", {}) for i in range(400)]
    gpu += [(f"work-gpu-{i}", "work", {"_route": "gpu"}) for i in range(300)]
    plain = [(f"work-{i}", "work", {}) for i in range(400)]
    plain += [(f"work-default-{i}", "work", {"_route": "default"}) for i in range(300)]
    reports = [
        (f"report-{i}", "work", {"_route": "reports", "_priority": "high"}) for i in range(20)
    ]
    enqueue([(n, {"k": k}, o) for k, n, o in gpu + plain + reports])
    if target.name == "redis":  # SDK records: plain lists and the Go scheduler's route lists
        sdk_gpu, sdk_plain = push_sdk(target.url, "gpu"), push_sdk(target.url, "")
    else:  # nothing foreign reaches a SQLite file: the same numbers natively
        sdk_gpu = [(f"native-gpu-{i}", "work", {"_route": "gpu"}) for i in range(300)]
        sdk_plain = [(f"native-{i}", "work", {}) for i in range(300)]
        enqueue([(n, {"k": k}, o) for k, n, o in sdk_gpu + sdk_plain])
    gpu += sdk_gpu
    plain += sdk_plain
    workers.start(APP, WORKER_ROUTING_KEYS="gpu", TEST_POOL="gpu")
    port = free_port()
    workers.start(APP, TEST_POOL="default", HEALTH_PORT=str(port))
    wanted = len(gpu) + len(plain)
    wait_for(lambda: target.sink.hlen("test:runs") >= wanted, 60, message="2,000 jobs")
    pools = target.sink.hgetall("test:pool")
    assert {pools[k] for k, _, _ in gpu} == {"gpu"}
    assert {pools[k] for k, _, _ in plain} == {"default"}
    # The route no worker serves waits, visible as its own queue.
    assert not any(k.startswith("report-") for k in pools)
    assert target.view.ready("reports:high", "work") == 20
    assert target.view.count("dead") == 0
    status = workers.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    entry = {"route": "reports", "priority": "high", "job_type": "work", "depth": 20}
    assert entry in json.loads(status.stdout)["queues"]
    assert "reports          high      work" in workers.cli("status").stdout
    sample = 'bananas_queue_depth{job_type="work",priority="high",route="reports"} 20.0'
    wait_for(lambda: sample in metrics(port), 10, message="the route's queue gauge")
    waited = workers.cli(
        "enqueue", "work", "--json", '{"k": "cli"}', "--route", "reports", "--wait", "0.5"
    )
    assert waited.returncode == 1
    assert "no live worker serves route 'reports'" in waited.stderr, waited.stderr
    bad = workers.cli("enqueue", "work", "--json", '{"k": "x"}', "--route", "a b")
    assert bad.returncode == 2 and "invalid route name 'a b'" in bad.stderr, bad.stderr
    workers.start(APP, WORKER_ROUTING_KEYS="reports", TEST_POOL="reports")
    wait_for(lambda: target.sink.hlen("test:runs") >= wanted + 21, 30, message="reports")
    pools = target.sink.hgetall("test:pool")
    assert {pools[k] for k, _, _ in reports} == {"reports"} == {pools["cli"]}
    runs = target.sink.hgetall("test:runs")
    assert set(runs.values()) == {"1"}, workers.repeat_causes()
    assert len(runs) == wanted + 21


@both_brokers
def test_routes_in_order_of_preference_then_priorities(
    workers: WorkerFactory, target: Backend
) -> None:
    jobs = [(f"d-{i}", "work", {}) for i in range(30)]
    jobs += [(f"gl-{i}", "work", {"_route": "gpu", "_priority": "low"}) for i in range(30)]
    jobs += [(f"gh-{i}", "render", {"_priority": "high"}) for i in range(30)]
    enqueue([(n, {"k": k}, o) for k, n, o in jobs])
    workers.start(APP, "--concurrency", "1", WORKER_ROUTING_KEYS="gpu,default", WORKER_PREFETCH="0")
    wait_for(lambda: len(target.sink.lrange("test:order")) >= 90, 30, message="90 jobs")
    order = [k.split("-")[0] for k in target.sink.lrange("test:order")]
    assert order == ["gh"] * 30 + ["gl"] * 30 + ["d"] * 30


def test_a_version_1_sqlite_file_is_upgraded_with_its_jobs_on_default(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    url = f"sqlite:///{db}"
    app.configure(Settings.load({"BANANAS_BROKER_URL": url}))
    ids = [app.enqueue("work", {"k": str(i)}).id for i in range(3)]
    app.close()
    # Back to the version-1 layout: no route column, queues keyed by (priority, name).
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(
        """DROP INDEX "bananas:jobs:ready";
        ALTER TABLE "bananas:jobs" DROP COLUMN route;
        CREATE INDEX "bananas:jobs:ready" ON "bananas:jobs" (priority, name, at, id)
            WHERE state = 'queued';
        CREATE TABLE q1 (priority TEXT NOT NULL, name TEXT NOT NULL,
            PRIMARY KEY (priority, name)) WITHOUT ROWID;
        INSERT INTO q1 SELECT priority, name FROM "bananas:queues";
        DROP TABLE "bananas:queues";
        ALTER TABLE q1 RENAME TO "bananas:queues";
        PRAGMA user_version = 1;"""
    )
    conn.close()
    view = BrokerView(url)
    try:
        assert view.run(view.broker.stats()).ready == {("normal", "work"): 3}
        got = view.run(view.broker.dequeue([("normal", "work")], 10, 30, "w:1:"))
        assert [d.id for d in got] == ids
    finally:
        view.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute('SELECT route, priority, name FROM "bananas:queues"').fetchall() == [
        ("default", "normal", "work")
    ]
    conn.close()


def test_an_sdk_record_with_a_bad_routing_key_is_dead_lettered_with_the_reason(
    workers: WorkerFactory, target: Backend
) -> None:
    workers.start(APP)
    r = redis.Redis.from_url(target.url)
    r.set("bananas:job:bad", sdk_record("bad", "work", {"k": "bad"}, routing_key="no way!"))
    r.lpush("bananas:queue:normal", "bad")
    r.close()
    wait_for(lambda: target.view.state("bad") == "dead", 10, message="the bad record buried")
    assert "invalid routing_key no way!" in target.view.dead_info("bad").reason


def test_queue_members_name_their_route_even_when_the_type_has_colons() -> None:
    from bananas.keys import lane, parse_member, split_lane

    assert lane("default", "high") == "high" and lane("gpu", "high") == "gpu:high"
    assert split_lane("high") == ("default", "high")
    assert split_lane("gpu:low") == ("gpu", "low")
    assert parse_member("normal:a:b") == ("normal", "a:b")
    assert parse_member("gpu:normal:a:b") == ("gpu:normal", "a:b")
    assert parse_member("my-route_2:low:x") == ("my-route_2:low", "x")


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_go_scheduler_jobs_of_an_unserved_route_wait_visibly_then_run(
    workers: WorkerFactory, target: Backend
) -> None:
    # The route is known to the broker once a queue of it was used (its lists
    # are looked at then: there is no index of the Go scheduler's lists).
    enqueue([("work", {"k": "native"}, {"_route": "video", "_priority": "low"})])
    r = redis.Redis.from_url(target.url)
    for i in range(5):
        record = sdk_record(f"v{i}", "work", {"k": f"v{i}"}, routing_key="video")
        r.set(f"bananas:job:v{i}", record)
        r.lpush("bananas:route:video:queue:low", f"v{i}")
    r.close()
    workers.start(APP, TEST_POOL="default")
    status = workers.cli("status", "--json")
    entry = {"route": "video", "priority": "low", "depth": 5}
    assert entry in json.loads(status.stdout)["unrouted_routes"], status.stdout
    assert "video low" in workers.cli("status").stdout
    assert target.sink.hlen("test:runs") == 0
    workers.start(APP, WORKER_ROUTING_KEYS="video", TEST_POOL="video")
    wait_for(lambda: target.sink.hlen("test:runs") == 6, 20, message="the video jobs")
    assert set(target.sink.hgetall("test:pool").values()) == {"video"}
    assert "unrouted_routes" not in json.loads(workers.cli("status", "--json").stdout)
