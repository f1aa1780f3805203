"""Redis ACL users (docs/deployment.md, "Redis users"): a user without
channel permission is refused at start with the permission named, no script
fails halfway for a refused PUBLISH, and a worker and a producer work under
exactly the least-privilege rules the docs give (read from the page)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from apps.core import app
from dashboard.dashtools import CliDashboard
from support import RedisServer, WorkerFactory
from test_broker_redis import Q, job

from bananas import JobFailed
from bananas.brokers.base import DeadInfo
from bananas.brokers.redis import RedisBroker, acl
from bananas.config import Settings
from bananas.errors import ConfigError

DOCS = Path(__file__).parent.parent / "docs" / "deployment.md"
# Redis 7's default for a new user: every key and command, no channel.
CHANNELLESS = "ACL SETUSER app on >pw ~bananas:* +@all"


def rule(user: str) -> list[str]:
    """The `ACL SETUSER <user> ...` line of docs/deployment.md, as arguments."""
    lines = re.findall(rf"^ACL SETUSER {user} .*$", DOCS.read_text(), re.M)
    assert len(lines) == 1, f"docs/deployment.md gives no single rule for {user}"
    return lines[0].split()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def add_user(server: RedisServer, args: list[str]) -> str:
    """Create the user; its URL."""
    admin = redis.Redis(port=server.port)
    admin.execute_command(*args)
    admin.close()
    user, password = args[2], next(a[1:] for a in args if a.startswith(">"))
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def test_a_user_without_channel_permission_is_refused_at_start(
    server: RedisServer, tmp_path: Path
) -> None:
    url = add_user(server, CHANNELLESS.split())
    workers = WorkerFactory(url, tmp_path, sink_url=f"sqlite:///{tmp_path}/sink.db")
    worker = workers.start("apps.core:app", wait=False)
    try:
        assert worker.wait(30) == 2
        refused = [e for e in worker.events() if e.get("event") == "worker.refused"]
        assert len(refused) == 1, worker.output()
        assert "channel bananas:result:notify:* (PUBLISH)" in refused[0]["error"]
        assert not worker.events("worker.started")
    finally:
        worker.stop()
    app.configure(Settings.load(env={"REDIS_URL": url}))
    with pytest.raises(ConfigError, match=r"channel bananas:result:notify:\* \(SUBSCRIBE\)"):
        app.enqueue("add", a=1, b=2)
    done = workers.cli("enqueue", "add", "--json", '{"a": 1, "b": 2}')  # the async path
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "channel bananas:result:notify:* (SUBSCRIBE), which a producer needs" in done.stderr


def test_a_refused_publish_leaves_no_half_written_outcome(server: RedisServer) -> None:
    """complete / bury publish last; a user without the channel (say, one
    that got past the probe) still settles the job whole."""
    url = add_user(server, CHANNELLESS.split())
    admin = redis.Redis(port=server.port, decode_responses=True)

    async def main() -> None:
        setup = RedisBroker(server.url)  # the default user enqueues
        await setup.enqueue([job(1), job(2)])
        await setup.close()
        b = RedisBroker(url)
        ok, bad = await b.dequeue(Q, 2, 30, "w:")
        assert await b.complete(ok, b'{"id":"j1"}', b"1", 1.0)
        info = DeadInfo(reason="r", error="e", priority="normal", name="t")
        assert await b.bury(bad, b'{"id":"j2"}', info, 1.0)
        assert await b.job_state("j1") == "completed"
        assert await b.job_state("j2") == "dead"
        await b.close()

    asyncio.run(main())
    assert admin.hget("bananas:result:j1", "status") == "completed"
    assert admin.hget("bananas:result:j2", "status") == "failed"
    assert admin.zcard("bananas:active") == 0 and admin.hlen("bananas:leases") == 0
    admin.close()


def test_worker_and_producer_under_the_documented_least_privilege_rules(
    server: RedisServer, tmp_path: Path
) -> None:
    worker_url = add_user(server, rule("bananas-worker"))
    producer_url = add_user(server, rule("bananas-producer"))
    workers = WorkerFactory(worker_url, tmp_path, sink_url=f"sqlite:///{tmp_path}/sink.db")
    worker = workers.start("apps.core:app", "--concurrency", "4")
    try:
        app.configure(Settings.load(env={"REDIS_URL": producer_url}))
        sums = [app.enqueue("add", a=i, b=1) for i in range(20)]
        retried = app.enqueue("flaky", k="twice", failures=1)
        doomed = app.enqueue("flaky", k="never", failures=100)
        assert [h.result(timeout=30) for h in sums] == [i + 1 for i in range(20)]
        assert retried.result(timeout=30) == 2
        with pytest.raises(JobFailed, match="fails on purpose"):
            doomed.result(timeout=30)
        assert not worker.events("worker.refused")
        # Only the persistence check, which needs the admin CONFIG GET, says so.
        warned = {e["event"] for e in worker.events() if e.get("level") in ("warning", "error")}
        assert warned <= {"broker.durability", "job.dead_lettered"}, worker.output()[-3000:]
        assert "NOPERM" not in worker.output()
    finally:
        worker.stop()


@pytest.mark.parametrize("role", list(acl.Role))
def test_every_command_a_role_runs_is_probed_and_in_its_documented_rule(role: acl.Role) -> None:
    """A command added to a script must get a probe and a place in the docs."""
    allowed = {a[1:].upper() for a in rule(f"bananas-{role}") if a.startswith("+")}
    for name in acl.needed(role):
        assert name in acl._PROBES, f"{name} has no probe in acl.py"
        assert name in allowed, f"docs/deployment.md: the {role} rule lacks +{name.lower()}"


def test_dashboard_under_its_documented_rule_and_refused_without_scripts(
    server: RedisServer, tmp_path: Path
) -> None:
    url = add_user(server, rule("bananas-dashboard"))
    dash = CliDashboard(url, tmp_path / "dash.log")
    try:
        for page in ("/", "/workers", "/dead", "/jobs", "/api/overview", "/api/workers"):
            assert httpx.get(f"{dash.url}{page}").status_code == 200, page
    finally:
        dash.stop()
    assert "NOPERM" not in dash.log_path.read_text()
    lacking = [a for a in rule("bananas-dashboard") if a != "+evalsha"]
    lacking[2] = "dash2"
    url = add_user(server, lacking)
    done = WorkerFactory(url, tmp_path).cli("dashboard", "--port", "1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"bananas: error: Redis user 'dash2' may not use command EVALSHA, which a dashboard "
        f"needs: {done.stderr.split('needs: ', 1)[1].strip()}"
    ]
