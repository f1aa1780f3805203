"""Real headless Chromium (Debian's, driven by Playwright) against `bananas
dashboard` (real uvicorn), a real redis-server and real `bananas worker` processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashtools import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    CliDashboard,
    chromium_available,
    enqueue,
    run,
    with_broker,
)
from support import WorkerFactory, wait_for

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM} (scripts/ensure-chromium.sh installs Debian's)",
)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    p.dialogs = []  # type: ignore[attr-defined]
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    # A CSP violation, a script error or a failed asset shows up here.
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.console_errors = errors  # type: ignore[attr-defined]
    yield p
    context.close()


def _no_console_errors(page: Any, allowed: tuple[str, ...] = ()) -> None:
    unexpected = [e for e in page.console_errors if not any(a in e for a in allowed)]
    assert unexpected == [], unexpected


def _dashboard(redis_url: str, tmp_path: Path, **env: str) -> Iterator[CliDashboard]:
    server = CliDashboard(
        redis_url, tmp_path / "dashboard.log", BANANAS_DASHBOARD_REFRESH="1s", **env
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dashboard(redis_url: str, tmp_path: Path) -> Iterator[CliDashboard]:
    yield from _dashboard(redis_url, tmp_path)


def test_overview_shows_depths_and_the_running_worker(
    redis_url: str, workers: WorkerFactory, dashboard: CliDashboard, page: Any
) -> None:
    worker = workers.start(GROUP_ID="browser-pool")
    # No worker has a handler for this type: the jobs wait, visible in the depth table.
    enqueue(redis_url, [("awaiting_handler", {"i": i}) for i in range(7)])
    enqueue(redis_url, [("awaiting_handler", {"i": i}) for i in range(2)], _priority="high")
    page.goto(dashboard.url + "/")
    row = page.locator('tr[data-job-type="awaiting_handler"]')
    expect(row.locator('[data-priority="normal"]')).to_have_text("7")
    expect(row.locator('[data-priority="high"]')).to_have_text("2")
    expect(page.locator('[data-metric="queued"]')).to_have_text("9")
    # The worker registers within a heartbeat; live refresh brings it in without a reload.
    expect(page.locator('[data-metric="workers"]')).to_have_text("1")
    # Live refresh picks up new jobs too.
    enqueue(redis_url, [("awaiting_handler", {"i": 9})], _priority="low")
    expect(row.locator('[data-priority="low"]')).to_have_text("1")
    page.click("text=Workers")
    worker_row = page.locator("tr[data-worker-id]")
    expect(worker_row).to_have_count(1)
    expect(worker_row).to_contain_text(str(worker.pid))
    expect(worker_row).to_contain_text("browser-pool")
    expect(worker_row).to_contain_text("default")
    # A job the worker runs shows up as completed.
    [job_id] = enqueue(redis_url, [("add", {"a": 2, "b": 3})])
    page.goto(f"{dashboard.url}/jobs/{job_id}")
    expect(page.locator(".job-title .badge")).to_have_text("completed")
    expect(page.locator("#result")).to_have_text("5")
    _no_console_errors(page)


def test_replay_a_dead_job_from_its_page(
    redis_url: str, workers: WorkerFactory, dashboard: CliDashboard, page: Any, r: Any
) -> None:
    workers.start()
    [job_id] = enqueue(redis_url, [("broken_until_fixed", {"k": "replayed"})])

    async def state(b: Any) -> str | None:
        return await b.job_state(job_id)  # type: ignore[no-any-return]

    wait_for(lambda: run(with_broker(redis_url, state)) == "dead", 30, 0.1, "the job to die")
    page.goto(f"{dashboard.url}/dead")
    page.click(f"a:text('{job_id}')")
    expect(page.locator(".job-title .badge")).to_have_text("dead")
    expect(page.locator("#traceback")).to_contain_text("is broken until test:fixed is set")
    r.set("test:fixed", "1")  # the bug is fixed: replaying now succeeds
    page.click("#replay")
    expect(page.locator(".flash")).to_contain_text("Replayed 1 job.")
    # The job page refreshes itself while the job is not finished.
    expect(page.locator(".job-title .badge")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#result")).to_have_text('"fixed"')
    assert r.hget("test:runs", "replayed") == "4"  # 3 failed attempts, then the replay
    page.goto(f"{dashboard.url}/dead")
    expect(page.locator("td.empty")).to_have_text("The dead-letter queue is empty.")
    _no_console_errors(page)


def test_bulk_replay_selected_from_the_dead_letter_page(
    redis_url: str, dashboard: CliDashboard, page: Any
) -> None:
    ids = enqueue(redis_url, [("doomed", {"i": i}) for i in range(3)])

    async def bury(b: Any) -> None:
        from dashtools import finish, lease

        await finish(b, await lease(b, [("normal", "doomed")], 3), fail=True)

    run(with_broker(redis_url, bury))
    page.goto(f"{dashboard.url}/dead")
    replay = page.locator("button:text('Replay selected')")
    expect(replay).to_be_disabled()
    page.check(f"input[name=ids][value='{ids[0]}']")
    page.check(f"input[name=ids][value='{ids[2]}']")
    expect(replay).to_be_enabled()
    replay.click()
    expect(page.locator(".flash")).to_contain_text("Replayed 2 jobs.")
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    expect(page.locator(f"tr[data-job-id='{ids[1]}']")).to_have_count(1)
    # Delete all asks first; dismissing the dialog deletes nothing.
    page.click("button:text('Delete all')")
    assert page.dialogs == ["Delete all 1 dead jobs for good?"]
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    _no_console_errors(page)


def test_a_script_in_a_payload_does_not_run(
    redis_url: str, dashboard: CliDashboard, page: Any
) -> None:
    evil = (
        "<script>window.__pwned = 'script'; alert('xss')</script>"
        "<img src=x onerror=\"window.__pwned = 'img'; alert('xss')\">"
    )
    [job_id] = enqueue(redis_url, [("<b>evil</b>", {"html": evil})], _description=evil)
    for path in ("/", "/jobs", f"/jobs/{job_id}"):
        page.goto(dashboard.url + path)
        expect(page.locator("h1").first).to_be_visible()
        assert page.evaluate("window.__pwned") is None, path
        # Nothing of the payload became markup: only the dashboard's own script is there.
        assert page.locator("script").count() == 1, path
        assert page.locator("img").count() == 0, path
        assert page.locator("main b").count() == 0, path
    expect(page.locator("#payload")).to_contain_text("<script>window.__pwned = 'script'")
    expect(page.locator(".sub")).to_contain_text("<b>evil</b>")
    assert page.dialogs == []
    _no_console_errors(page)


def test_pages_are_refused_without_the_token(redis_url: str, tmp_path: Path, page: Any) -> None:
    enqueue(redis_url, [("secret_type", {"card": "4111"})])
    for server in _dashboard(redis_url, tmp_path, BANANAS_DASHBOARD_TOKEN=TOKEN):
        response = page.goto(server.url + "/jobs")
        assert response is not None and response.status == 401
        expect(page.locator("h1")).to_have_text("Log in to the Bananas dashboard")
        assert "secret_type" not in page.content()
        page.fill("input[name=token]", "wrong-token-here")
        page.click("button:text('Log in')")
        expect(page.locator(".flash")).to_contain_text("not valid")
        page.fill("input[name=token]", TOKEN)
        page.click("button:text('Log in')")
        expect(page.locator("h1")).to_have_text("Jobs")
        expect(page.locator("tr[data-job-id]")).to_contain_text("secret_type")
        # A fresh browser with the ?token= link gets in and the token leaves the URL.
        other = page.context.browser.new_context()
        p2 = other.new_page()
        p2.goto(f"{server.url}/workers?token={TOKEN}")
        assert re.search(r"/workers$", p2.url), p2.url
        expect(p2.locator("h1")).to_have_text("Workers")
        other.close()
        # The refused first load is the only error the browser logs.
        _no_console_errors(page, allowed=("401",))


def test_a_running_jobs_progress_updates_on_its_page_without_a_reload(
    redis_url: str, workers: WorkerFactory, page: Any, r: Any, tmp_path: Path
) -> None:
    # Page refresh every hour: only the page's progress poll can move the bar.
    server = CliDashboard(redis_url, tmp_path / "dashboard.log", BANANAS_DASHBOARD_REFRESH="1h")
    try:
        workers.start("apps.progress:app")
        [job_id] = enqueue(redis_url, [("progress_thread", {"k": "browser"})])
        page.goto(f"{server.url}/jobs/{job_id}")
        page.evaluate("window.loadedOnce = true")
        expect(page.locator("#progress-text")).to_have_text("40% resized 40 of 100 images")
        expect(page.locator("#progress-bar")).to_have_attribute("value", "0.4")
        expect(page.locator("#lease")).to_contain_text("held by worker")
        r.hset("test:go", "browser", "1")
        expect(page.locator("#progress-text")).to_have_text("100% done")
        assert page.locator("#progress-bar").evaluate("b => b.value") == 1
        assert page.evaluate("window.loadedOnce") is True  # the same page: no reload
        _no_console_errors(page)
    finally:
        server.stop()
