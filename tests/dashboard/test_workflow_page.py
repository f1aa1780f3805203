"""The dashboard's workflow pages: the graph of a workflow (nodes colored by
state, edges its dependencies) in real headless Chromium against a real
worker, updating live without a reload; the HTML and JSON on both brokers
(escaping, the link from a step's job page, unknown ids, the running list,
a big group collapsed into one node, a 10,000-member chord)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashtools import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    CliDashboard,
    both_brokers,
    chromium_available,
    serve_app,
)
from support import Backend, WorkerFactory, wait_for

from bananas import Bananas, chain, chord, group
from bananas.config import Settings
from bananas.dashboard.workflow_graph import COLLAPSE

pytestmark = pytest.mark.timeout(120)


def _app(broker_url: str) -> Bananas:
    return Bananas(settings=Settings.load(overrides={"BANANAS_BROKER_URL": broker_url}))


@both_brokers
def test_the_graph_page_and_its_json(broker_url: str, client: httpx.Client) -> None:
    app = _app(broker_url)
    members = [app.spec("square", i=i) for i in range(COLLAPSE + 5)]
    flow = chain(
        app.spec("<b>odd</b>", x=1),
        chord(members, app.spec("collect", k="g")),
    ).enqueue()
    first, *rest = flow.step_ids
    callback = rest[-1]
    page = client.get(f"/workflows/{flow.id}")
    assert page.status_code == 200
    html = page.text
    assert "&lt;b&gt;odd&lt;/b&gt;" in html and "<b>odd" not in html  # user text is escaped
    assert f'data-node="{first}" data-state="queued"' in html
    assert f'data-node="group:{rest[0]}" data-state="waiting"' in html  # 30 members, one node
    assert f'data-node="{callback}" data-state="waiting"' in html
    assert html.count('class="wf-node"') == 3
    assert html.count('class="wf-edge"') == 2
    assert f'data-from="{first}" data-to="group:{rest[0]}"' in html
    assert f'data-from="group:{rest[0]}" data-to="{callback}"' in html
    assert "drawn as one node each" in html
    assert (
        f'data-count="waiting"><tspan class="wf-dot-waiting">●</tspan> '
        f'<tspan class="wf-n">{COLLAPSE + 5}</tspan> waiting' in html
    )

    data = client.get(f"/api/workflows/{flow.id}").json()
    assert (data["id"], data["state"], data["total"], data["done"]) == (flow.id, "running", 32, 0)
    assert data["nodes"][first] == {"state": "queued", "detail": "", "error": ""}
    group_node = data["nodes"][f"group:{rest[0]}"]
    assert group_node["detail"] == f"{COLLAPSE + 5} waiting"
    assert group_node["counts"] == {
        "failed": 0,
        "cancelled": 0,
        "running": 0,
        "queued": 0,
        "waiting": COLLAPSE + 5,
        "completed": 0,
    }
    assert "steps" not in data
    full = client.get(f"/api/workflows/{flow.id}", params={"steps": "1"}).json()
    assert [s["id"] for s in full["steps"]] == flow.step_ids

    job_page = client.get(f"/jobs/{first}").text
    assert f'href="/workflows/{flow.id}"' in job_page
    assert 'id="job-workflow"' not in client.get(f"/jobs/{flow.id}-nope").text

    listing = client.get("/workflows").text
    assert f'data-workflow-id="{flow.id}"' in listing and "0 / 32" in listing
    assert client.get("/api/workflows").json()["running"][0]["id"] == flow.id
    missing = client.get("/workflows/no-such-workflow")
    assert missing.status_code == 404 and "Workflow not found" in missing.text
    assert client.get("/api/workflows/no-such-workflow").status_code == 404


def test_the_workflow_pages_need_the_login(redis_url: str) -> None:
    app = _app(redis_url)
    flow = chain(app.spec("add", x=1)).enqueue()
    paths = [f"/workflows/{flow.id}", "/workflows", f"/api/workflows/{flow.id}", "/api/workflows"]
    with serve_app(redis_url, token="wf-token") as server, httpx.Client(base_url=server.url) as c:
        for path in paths:
            assert c.get(path, headers={"accept": "text/html"}).status_code == 401, path
            ok = c.get(path, headers={"authorization": "Bearer wf-token"})
            assert ok.status_code == 200, path
            assert ok.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_10000_member_chord_stays_usable(broker_url: str, client: httpx.Client) -> None:
    app = _app(broker_url)
    flow = chord([app.spec("square", i=i) for i in range(10_000)], app.spec("collect")).enqueue()
    started = time.monotonic()
    page = client.get(f"/workflows/{flow.id}")
    took_page = time.monotonic() - started
    started = time.monotonic()
    data = client.get(f"/api/workflows/{flow.id}").json()
    took_api = time.monotonic() - started
    print(
        f"10,000-member chord: page {took_page:.2f}s, {len(page.content)} bytes; "
        f"api {took_api:.2f}s"
    )
    assert page.status_code == 200
    assert page.text.count('class="wf-node"') == 2
    assert "group of 10,000 steps" in page.text
    assert '<tspan class="wf-n">10,000</tspan> queued' in page.text
    assert len(data["nodes"]) == 2
    assert 'data-poll-ms="5000"' in page.text  # a big workflow is polled less often
    assert took_page < 10 and took_api < 10


# --- real Chromium, a real worker --------------------------------------------

browser_only = pytest.mark.skipif(not chromium_available(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@browser_only
def test_the_graph_shows_states_and_updates_live(
    redis_url: str, workers: WorkerFactory, target: Backend, tmp_path: Path, browser: Any
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    server = CliDashboard(redis_url, tmp_path / "dashboard.log", BANANAS_DASHBOARD_REFRESH="1s")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        app = Bananas(settings=Settings.load())
        workers.start("apps.workflows:app", "--concurrency", "4")
        flow = chain(
            app.spec("slow", k="live", seconds=3),
            chord([app.spec("square", i=2), app.spec("boom", k="live")], app.spec("collect")),
        ).enqueue()
        slow, square, boom, callback = flow.step_ids
        wait_for(lambda: target.sink.hget("test:started", "live"), 20, message="the slow step")
        page.goto(f"{server.url}/workflows/{flow.id}")
        node = lambda step: page.locator(f'g.wf-node[data-node="{step}"]')  # noqa: E731
        expect(node(slow)).to_have_attribute("data-state", "running")
        expect(node(slow).locator(".wf-state")).to_have_text("running")
        expect(node(slow).locator(".wf-detail")).to_have_text("attempt 1")
        for step in (square, boom, callback):
            expect(node(step)).to_have_attribute("data-state", "waiting")
        expect(page.locator("path.wf-edge")).to_have_count(4)
        expect(page.locator("#wf-state")).to_have_text("running")
        page.evaluate("window.__notReloaded = true")
        # The worker moves on: the graph follows without a reload.
        expect(node(slow)).to_have_attribute("data-state", "completed")
        expect(node(square)).to_have_attribute("data-state", "completed")
        expect(node(boom)).to_have_attribute("data-state", "failed")
        expect(node(callback)).to_have_attribute("data-state", "cancelled")
        expect(node(boom).locator(".wf-detail")).to_contain_text("1 attempt")
        expect(page.locator("#wf-state")).to_have_text("failed")
        expect(page.locator("#wf-failed")).to_be_visible()
        expect(page.locator("#wf-failed-step")).to_have_text(boom)
        expect(page.locator("#wf-error")).to_contain_text("boom live")
        expect(page.locator("#wf-graph")).to_have_attribute("data-final", "failed")
        assert page.evaluate("window.__notReloaded") is True
        # A collapsed group (30 members: one node) counts its members live.
        big = chain(
            app.spec("slow", k="big", seconds=2),
            group([app.spec("square", i=i) for i in range(30)]),
        ).enqueue()
        wait_for(lambda: target.sink.hget("test:started", "big"), 20, message="the big one")
        page.goto(f"{server.url}/workflows/{big.id}")
        packed = page.locator(f'g.wf-node[data-node="group:{big.step_ids[1]}"]')
        expect(page.locator("g.wf-node")).to_have_count(2)
        expect(packed.locator('[data-count="waiting"] .wf-n')).to_have_text("30")
        expect(packed.locator('[data-count="completed"] .wf-n')).to_have_text("0")
        expect(packed.locator('[data-count="completed"] .wf-n')).to_have_text("30")
        expect(packed.locator('[data-count="waiting"] .wf-n')).to_have_text("0")
        expect(packed).to_have_attribute("data-state", "completed")
        expect(page.locator("#wf-state")).to_have_text("completed")
        page.goto(f"{server.url}/workflows/{flow.id}")
        # A step's node links to its job page, which links back.
        node(boom).locator("a").click()
        expect(page.locator(".job-title .badge")).to_have_text("dead")
        page.locator("#job-workflow a").click()
        expect(page.locator("#wf-state")).to_have_text("failed")
        assert errors == [], errors
    finally:
        context.close()
        server.stop()


def test_the_pages_work_under_the_documented_dashboard_acl(tmp_path: Path) -> None:
    """docs/deployment.md's least-privilege dashboard user reads workflows."""
    from support import RedisServer
    from test_acl import add_user, rule

    server = RedisServer(tmp_path)
    server.start()
    try:
        app = _app(f"redis://127.0.0.1:{server.port}/0")
        flow = chord([app.spec("square", i=1)], app.spec("collect")).enqueue()
        url = add_user(server, rule("bananas-dashboard"))
        with serve_app(url) as dash, httpx.Client(base_url=dash.url) as c:
            for path in (f"/workflows/{flow.id}", "/workflows", f"/api/workflows/{flow.id}"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text[r.text.find("<main") :][:800])
    finally:
        server.stop()
