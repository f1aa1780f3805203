"""The figures the pages show agree with each other and with the workers'
logs: running apart from prefetched, the attempt a running job is on, the
registry expiry the workers page names; and `bananas dashboard --app`. Real
headless Chromium, real `bananas dashboard`, redis-server and workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashtools import CHROMIUM, CHROMIUM_FLAGS, CliDashboard, chromium_available, enqueue
from support import WorkerFactory, wait_for

from bananas.config import REGISTRY_EXPIRY, Settings

pytestmark = pytest.mark.skipif(
    not chromium_available(),
    reason=f"no Chromium at {CHROMIUM} (scripts/ensure-chromium.sh installs Debian's)",
)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page that records console and script errors (checked at the end)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.console_errors = errors  # type: ignore[attr-defined]
    yield p
    context.close()


def _no_console_errors(page: Any) -> None:
    assert page.console_errors == [], page.console_errors


@pytest.fixture
def dashboard(redis_url: str, tmp_path: Path) -> Iterator[CliDashboard]:
    server = CliDashboard(redis_url, tmp_path / "dashboard.log", BANANAS_DASHBOARD_REFRESH="1s")
    try:
        yield server
    finally:
        server.stop()


def test_running_and_prefetched_are_shown_apart(
    redis_url: str, workers: WorkerFactory, dashboard: CliDashboard, page: Any
) -> None:
    """2 slots and 2 prefetched: the broker holds 4 leases; 'running' says 2,
    as the worker does, and the 2 waiting in its buffer are shown as such."""
    worker = workers.start(WORKER_CONCURRENCY="2", WORKER_PREFETCH="2")
    ids = enqueue(redis_url, [("sleepy", {"k": f"p{i}", "seconds": 60}) for i in range(6)])
    wait_for(lambda: len(worker.events("job.started")) == 2, 20, message="two jobs started")
    page.goto(dashboard.url + "/")
    expect(page.locator('[data-metric="prefetched"]')).to_have_text("2")  # within a heartbeat
    expect(page.locator('[data-metric="running"]')).to_have_text("2")
    expect(page.locator(".card", has_text="Workers")).to_contain_text("2 slots")
    expect(page.locator('[data-metric="queued"]')).to_have_text("2")
    row = page.locator('tr[data-job-type="sleepy"]')
    expect(row.locator("td.num").last).to_have_text("4")  # leased: running + prefetched

    page.goto(dashboard.url + "/workers")
    worker_row = page.locator("tr[data-worker-id]")
    expect(worker_row.locator("[data-running]")).to_have_text("2")
    expect(worker_row.locator("[data-prefetched]")).to_have_text("2")

    # The attempt a running job is on is the one its worker logs.
    started = worker.events("job.started")
    assert {e["attempt"] for e in started} == {1}
    running_id = started[0]["job_id"]
    assert running_id in ids
    page.goto(dashboard.url + "/jobs?state=running")
    expect(page.locator("table.jobs th").nth(4)).to_have_text("Attempt")
    expect(page.locator(f"tr[data-job-id='{running_id}'] td.num")).to_have_text("1")
    page.goto(f"{dashboard.url}/jobs/{running_id}")
    expect(page.locator("table.fields tr", has_text="attempts")).to_contain_text(
        "0 finished · attempt 1 running"
    )
    _no_console_errors(page)


def test_the_workers_page_names_the_expiry_it_lists_by(
    redis_url: str, workers: WorkerFactory, dashboard: CliDashboard, page: Any
) -> None:
    assert Settings().registry_expiry == REGISTRY_EXPIRY == 10.0
    worker = workers.start()
    page.goto(dashboard.url + "/workers")
    expect(page.locator("p.hint").first).to_have_text(
        "Processes that sent a heartbeat within the last 10s."
    )
    expect(page.locator("tr[data-worker-id]")).to_have_count(1)
    expect(page.locator("tr[data-worker-id]")).to_contain_text(str(worker.pid))
    api = page.request.get(dashboard.url + "/api/workers").json()
    assert api["expiry"] == REGISTRY_EXPIRY


def test_dashboard_app_option_lists_the_schedules(
    redis_url: str, tmp_path: Path, page: Any
) -> None:
    (tmp_path / "dash_opt_app.py").write_text(
        "from bananas import Bananas\n"
        "app = Bananas()\n"
        "@app.cron('30 4 * * *')\n"
        "def nightly_report() -> None: ...\n"
    )
    server = CliDashboard(
        redis_url, tmp_path / "dash.log", "--app", "dash_opt_app:app", PYTHONPATH=str(tmp_path)
    )
    try:
        page.goto(server.url + "/schedules")
        expect(page.locator('[data-schedule="nightly_report"]')).to_contain_text("30 4 * * *")
        _no_console_errors(page)
    finally:
        server.stop()
