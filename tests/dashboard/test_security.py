"""Authentication, CSRF, escaping and headers, over real HTTP."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest
from dashtools import ThreadServer, csrf_from, enqueue, finish, lease, run, serve_app, with_broker

from bananas.dashboard import DashboardConfig, create_app
from bananas.errors import ConfigError

TOKEN = "s3cret-token-for-tests"
HTML = {"accept": "text/html"}
PAGES = ["/", "/workers", "/jobs", "/jobs?state=dead", "/jobs/some-id", "/dead", "/schedules"]
API = ["/api/overview", "/api/workers", "/api/jobs", "/api/jobs/some-id", "/api/dead"]


@pytest.fixture
def locked(redis_url: str) -> Iterator[ThreadServer]:
    with serve_app(redis_url, token=TOKEN) as server:
        yield server


@pytest.fixture
def basic(redis_url: str) -> Iterator[ThreadServer]:
    with serve_app(redis_url, username="ops", password="correct horse") as server:
        yield server


def test_every_page_and_api_refused_without_the_token(locked: ThreadServer) -> None:
    with httpx.Client(base_url=locked.url) as c:
        for path in PAGES:
            r = c.get(path, headers=HTML)
            assert r.status_code == 401, path
            assert "Log in to the Bananas dashboard" in r.text
            assert "Bearer" in r.headers["www-authenticate"]
        for path in API:
            r = c.get(path)
            assert r.status_code == 401 and r.json() == {"error": "authentication required"}
        r = c.post("/dead/replay", data={"ids": "x"})
        assert r.status_code == 401
        r = c.post("/api/dead/delete", json={"all": True})
        assert r.status_code == 401
        wrong = c.get("/api/overview", headers={"authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        forged = c.get("/", headers={**HTML, "cookie": "bananas_dashboard_session=1.abc"})
        assert forged.status_code == 401
        # Static assets are public code, no data.
        assert c.get("/static/dashboard.css").status_code == 200


def test_bearer_token_opens_pages_and_api(locked: ThreadServer) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=locked.url, headers=auth) as c:
        for path in PAGES:
            assert c.get(path, headers=HTML).status_code in (200, 404), path
        assert c.get("/api/overview").json()["queued"] == 0
        # Bearer-authenticated API calls need no CSRF token: no browser sends that header.
        r = c.post("/api/dead/delete", json={"ids": ["nope"]})
        assert r.status_code == 200 and r.json()["missing"] == ["nope"]


def test_query_token_login_sets_an_httponly_cookie(locked: ThreadServer) -> None:
    with httpx.Client(base_url=locked.url, headers=HTML) as c:
        r = c.get("/workers", params={"token": TOKEN, "x": "1"}, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/workers?x=1"  # the token leaves the URL
        cookie = r.headers["set-cookie"]
        assert "bananas_dashboard_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert c.get("/workers").status_code == 200
        assert c.get("/api/overview").status_code == 200
        bad = httpx.get(f"{locked.url}/", params={"token": "wrong-token"}, headers=HTML)
        assert bad.status_code == 401 and "not valid" in bad.text


def test_login_form_then_logout(locked: ThreadServer) -> None:
    with httpx.Client(base_url=locked.url, headers=HTML) as c:
        page = c.get("/dead")
        assert page.status_code == 401
        token = csrf_from(page.text)
        wrong = c.post(
            "/login", data={"token": "nope-nope-nope", "csrf_token": token, "next": "/dead"}
        )
        assert wrong.status_code == 401 and "not valid" in wrong.text
        ok = c.post(
            "/login",
            data={"token": TOKEN, "csrf_token": token, "next": "/dead"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/dead"
        page = c.get("/dead")
        assert page.status_code == 200 and "Log out" in page.text
        # An open redirect is not possible through `next`.
        again = c.post(
            "/login",
            data={"token": TOKEN, "csrf_token": token, "next": "//evil.example/x"},
            follow_redirects=False,
        )
        assert again.headers["location"] == "/"
        out = c.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert c.get("/dead").status_code == 401


def test_basic_auth(basic: ThreadServer) -> None:
    r = httpx.get(f"{basic.url}/", headers=HTML)
    assert (
        r.status_code == 401 and 'Basic realm="Bananas dashboard"' in r.headers["www-authenticate"]
    )
    assert httpx.get(f"{basic.url}/", auth=("ops", "wrong password")).status_code == 401
    assert httpx.get(f"{basic.url}/", auth=("other", "correct horse")).status_code == 401
    ok = httpx.get(f"{basic.url}/", auth=("ops", "correct horse"), headers=HTML)
    assert ok.status_code == 200 and "Overview" in ok.text
    garbage = httpx.get(f"{basic.url}/", headers={"authorization": "Basic %%%"})
    assert garbage.status_code == 401
    token = base64.b64encode(b"ops:correct horse").decode()
    assert (
        httpx.get(
            f"{basic.url}/api/overview", headers={"authorization": f"Basic {token}"}
        ).status_code
        == 200
    )


def _dead_job(redis_url: str) -> str:
    [job_id] = enqueue(redis_url, [("victim", {"k": 1})])

    async def work(b):
        await finish(b, await lease(b, [("normal", "victim")], 1), fail=True)

    run(with_broker(redis_url, work))
    return job_id


def test_actions_need_the_csrf_token(redis_url: str, client: httpx.Client) -> None:
    job_id = _dead_job(redis_url)
    page = client.get(f"/jobs/{job_id}").text
    token = csrf_from(page)
    for data in ({"ids": job_id}, {"ids": job_id, "csrf_token": "forged"}):
        r = client.post("/dead/delete", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    # The right token with another browser's cookie (none) fails too.
    fresh = httpx.post(f"{client.base_url}/dead/delete", data={"ids": job_id, "csrf_token": token})
    assert fresh.status_code == 403
    # JSON API: header required.
    assert client.post("/api/dead/delete", json={"ids": [job_id]}).status_code == 403
    # A cross-origin POST is refused even with a valid token.
    r = client.post(
        "/dead/delete",
        data={"ids": job_id, "csrf_token": token},
        headers={"origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "cross-origin" in r.text
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "dead"  # nothing happened
    # State changes are POST only.
    assert client.get("/dead/delete", params={"ids": job_id}).status_code == 405
    ok = client.post(
        "/dead/delete", data={"ids": job_id, "csrf_token": token}, follow_redirects=False
    )
    assert ok.status_code == 303
    assert client.get(f"/api/jobs/{job_id}").status_code == 404


def test_csrf_header_works_for_the_json_api(redis_url: str, client: httpx.Client) -> None:
    job_id = _dead_job(redis_url)
    token = csrf_from(client.get("/dead").text)
    r = client.post("/api/dead/replay", json={"ids": [job_id]}, headers={"x-csrf-token": token})
    assert r.status_code == 200 and r.json()["done"] == 1


def test_payloads_are_escaped_everywhere(redis_url: str, client: httpx.Client) -> None:
    evil = '<script>window.pwned=1</script><img src=x onerror="alert(1)">'
    [job_id] = enqueue(redis_url, [(f"type<b>{'x'}", {"html": evil})], _description=evil)
    queued = [client.get(p).text for p in ("/", "/jobs", f"/jobs/{job_id}")]
    for html in queued:
        assert "<script>window.pwned" not in html and "<img src=x" not in html
        assert "<b>" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in queued[2]
    assert "type&lt;b&gt;x" in queued[0]
    # The ?q= search value and messages are escaped too.
    r = client.get("/jobs", params={"q": "<svg onload=alert(1)>"})
    assert "<svg onload" not in r.text and "&lt;svg onload=alert(1)&gt;" in r.text


def test_login_page_redirects_when_no_login_is_needed(client: httpx.Client) -> None:
    r = client.get("/login", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_security_headers(client: httpx.Client) -> None:
    r = client.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    csrf_cookie = r.headers["set-cookie"]
    assert "bananas_dashboard_csrf=" in csrf_cookie and "HttpOnly" in csrf_cookie


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BANANAS_DASHBOARD_TOKEN": "short"}, "BANANAS_DASHBOARD_TOKEN is too short"),
        ({"BANANAS_DASHBOARD_TOKEN": " padded-token "}, "spaces at its ends"),
        ({"BANANAS_DASHBOARD_USER": "ops"}, "BANANAS_DASHBOARD_PASSWORD is not set"),
        ({"BANANAS_DASHBOARD_PASSWORD": "long-enough"}, "BANANAS_DASHBOARD_USER is not set"),
        (
            {"BANANAS_DASHBOARD_USER": "a:b", "BANANAS_DASHBOARD_PASSWORD": "long-enough"},
            "without ':'",
        ),
        (
            {"BANANAS_DASHBOARD_PREFIX": "no-slash"},
            "BANANAS_DASHBOARD_PREFIX='no-slash' is invalid",
        ),
        ({"BANANAS_DASHBOARD_REFRESH": "soon"}, "BANANAS_DASHBOARD_REFRESH='soon' is invalid"),
        ({"BANANAS_DASHBOARD_REFRESH": "100ms"}, "1s to 1h"),
    ],
)
def test_invalid_settings_are_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        DashboardConfig.load(env)
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app(env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})


def test_settings_from_env_and_arguments() -> None:
    config = DashboardConfig.load(
        {"BANANAS_DASHBOARD_TOKEN": "from-env-token", "BANANAS_DASHBOARD_PREFIX": "/ops/q/"}
    )
    assert config.token == "from-env-token" and config.prefix == "/ops/q" and config.auth_required
    assert (
        DashboardConfig.load(
            {"BANANAS_DASHBOARD_TOKEN": "from-env-token"}, token="arg-wins-1"
        ).token
        == "arg-wins-1"
    )
    assert not DashboardConfig.load({}).auth_required
    assert DashboardConfig.load({"BANANAS_DASHBOARD_REFRESH": "0"}).refresh_seconds == 0
