"""A Redis password never leaves the process: every form redis-py accepts is
masked in every output (worker log, health and metrics, `bananas status` text
and --json, the CLI's error path with Redis down, dashboard pages and API)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from dashboard.dashtools import CliDashboard
from redis.connection import parse_url
from support import RedisServer, WorkerFactory, free_port, wait_for

from bananas.config import Settings
from bananas.redact import redact_url

PW = "Zq7kS3cretPw"
FORMS = {
    "query": "redis://127.0.0.1:{port}/0?password=" + PW,
    "colon": "redis://:" + PW + "@127.0.0.1:{port}/0",
    "user": "redis://default:" + PW + "@127.0.0.1:{port}/0",
}
OFFLINE_FORMS = [
    *FORMS.values(),
    "rediss://default:" + PW + "@127.0.0.1:{port}/0?ssl_cert_reqs=none",
    "rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none&password=" + PW,
    "unix://default:" + PW + "@/tmp/redis.sock?db=0",
    "unix:///tmp/redis.sock?db=0&password=" + PW,
    "redis://worker@127.0.0.1:{port}/0?password=" + PW,
    "redis://127.0.0.1:{port}/0?password=" + PW + "&username=worker",
]


@pytest.mark.parametrize("form", OFFLINE_FORMS)
def test_every_form_redis_py_reads_a_password_from_is_masked(form: str) -> None:
    url = form.format(port=6379)
    assert parse_url(url).get("password") == PW  # redis-py authenticates with it
    masked = redact_url(url)
    assert PW not in masked, masked
    assert "***" in masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:ab/cd" + PW + "@h:1/0", "redis://:***@h:1/0"),  # unescaped `/`
        ("redis://h/0?password=a@" + PW, "redis://h/0?password=***"),  # `@` in the query
        ("redis://" + PW + "@h", "redis://***@h"),  # a lone word may be a password
        (
            "redis+sentinel://:" + PW + "@h1:26379,h2:26379/m",
            "redis+sentinel://:***@h1:26379,h2:26379/m",
        ),
        ("redis://h/0?sentinel_password=" + PW, "redis://h/0?sentinel_password=***"),
        ("sqlite:///.bananas/queue.db", "sqlite:///.bananas/queue.db"),
    ],
)
def test_awkward_urls(url: str, masked: str) -> None:
    assert redact_url(url) == masked


def test_settings_repr_leaves_the_url_out() -> None:
    settings = Settings.load({"REDIS_URL": FORMS["colon"].format(port=1)})
    assert PW not in repr(settings)


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    redis.Redis(port=server.port).config_set("requirepass", PW)
    yield server
    server.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


@pytest.mark.parametrize("form", sorted(FORMS))
def test_no_output_shows_the_password(form: str, locked_redis: RedisServer, tmp_path: Path) -> None:
    url = FORMS[form].format(port=locked_redis.port)
    factory = WorkerFactory(url, tmp_path)
    outputs: dict[str, str] = {}
    dash = None
    try:
        port = free_port()
        worker = factory.start("apps.core:app", HEALTH_PORT=str(port))
        enqueued = factory.cli("enqueue", "add", "--json", '{"a": 1, "b": 2}', "--wait", "10")
        assert enqueued.returncode == 0, enqueued.stderr
        for path in ("/livez", "/readyz", "/metrics"):
            outputs[path] = wait_for(lambda p=path: _get(f"http://127.0.0.1:{port}{p}"), 10)
        status = factory.cli("status")
        status_json = factory.cli("status", "--json")
        assert status.returncode == 0 and status_json.returncode == 0, status.stderr
        assert json.loads(status_json.stdout)["broker"].count("***") == 1
        outputs["status"] = status.stdout + status.stderr
        outputs["status --json"] = status_json.stdout + status_json.stderr
        dash = CliDashboard(url, tmp_path / "dashboard.log")
        pages = ["/", "/workers", "/jobs", "/dead", "/schedules", "/api/overview"]
        pages += ["/api/workers", "/api/jobs", "/api/dead"]
        for page in pages:
            response = httpx.get(dash.url + page, timeout=10, follow_redirects=True)
            assert response.status_code == 200, (page, response.status_code)
            outputs[f"dashboard {page}"] = response.text
        assert "***" in outputs["dashboard /"]  # the footer names the broker, masked
        overview = json.loads(outputs["dashboard /api/overview"])
        assert "***" in json.dumps(overview)
    finally:
        if dash is not None:
            dash.stop()
            outputs["dashboard log"] = dash.log_path.read_text()
        factory.stop_all()
    outputs["worker log"] = worker.output()
    assert worker.events("worker.started")[0]["broker"].count("***") == 1
    down = FORMS[form].format(port=free_port())  # nothing listens there
    for args in (["status"], ["status", "--json"], ["dlq", "list"], ["enqueue", "add"]):
        out = factory.cli(*args, REDIS_URL=down, TEST_REDIS_URL=down)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "***" in out.stderr, out.stderr
        outputs[f"{' '.join(args)} with Redis down"] = out.stdout + out.stderr
    leaks = [name for name, text in outputs.items() if PW in text]
    assert not leaks, {name: outputs[name][:2000] for name in leaks}
