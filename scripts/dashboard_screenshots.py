#!/usr/bin/env python3
"""Regenerate docs/img/dashboard-overview.png and docs/img/dashboard-job.png.

Starts a throw-away redis-server on a free loopback port, real `bananas worker`
processes (a default pool, an image pool and a dedicated scheduler) running a
small demo app, real traffic (some of it failing into the dead-letter queue),
then `bananas dashboard`, and photographs it with Debian's headless Chromium
through Playwright.

The throughput chart covers an hour; so that the picture is not one lonely
bar, the 45 minutes before the run are given demo figures (written to the
per-minute throughput hashes, which expire). Everything else on the pages is
real state written by the workers.

    .venv/bin/python scripts/dashboard_screenshots.py
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import redis
from playwright.sync_api import sync_playwright

from bananas import Bananas
from bananas.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = os.environ.get("BANANAS_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DEMO_APP = '''
"""Demo handlers for the dashboard screenshots."""
import asyncio
import random
import time

from bananas import Bananas

app = Bananas()


@app.job(priority="high", max_retries=2)
async def send_email(to: str, subject: str, template: str = "welcome") -> dict:
    await asyncio.sleep(random.uniform(0.05, 0.4))
    return {"to": to, "message_id": f"<{random.getrandbits(48):x}@mail.example.com>"}


@app.job(max_retries=1)
def resize_image(path: str, sizes: list) -> list:
    time.sleep(random.uniform(0.1, 0.5))
    return [f"{path.rsplit('.', 1)[0]}_{s}.webp" for s in sizes]


@app.job(priority="low")
async def generate_report(report_id: int, fmt: str = "pdf") -> str:
    await asyncio.sleep(random.uniform(0.5, 2.0))
    return f"s3://reports/{report_id}.{fmt}"


class CrmUnavailable(RuntimeError):
    pass


def _push(account: dict) -> None:
    if account.get("tier") == "legacy":
        raise CrmUnavailable(
            f"CRM rejected account {account['id']}: 409 Conflict (legacy tier is read-only)"
        )


@app.job(max_retries=2)
def sync_crm(account: dict, fields: list) -> int:
    time.sleep(random.uniform(0.05, 0.2))
    _push(account)
    return len(fields)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def seed_history(client: redis.Redis, prefix: str) -> None:
    """Demo figures for the 45 minutes before now (see the module docstring)."""
    keys = Keys(prefix)
    now_minute = int(time.time() // 60)
    rng = random.Random(7)
    for back in range(45, 0, -1):
        minute = now_minute - back
        base = 60 + 40 * (1 + (back % 17) / 17) + rng.randint(-15, 15)
        failed = rng.choice([0, 0, 1, 2, 3]) + (12 if 18 <= back <= 21 else 0)
        client.hset(keys.throughput(minute), mapping={"completed": int(base), "failed": failed})
        client.expire(keys.throughput(minute), 7200)


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bananas-shots-"))
    (work / "shots_app.py").write_text(textwrap.dedent(DEMO_APP))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    procs: list[subprocess.Popen[bytes]] = []
    redis_bin = shutil.which("redis-server") or "redis-server"
    procs.append(
        subprocess.Popen(
            [
                redis_bin,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(work),
            ],
            stdout=subprocess.DEVNULL,
        )
    )
    client = redis.Redis.from_url(url)
    wait_for("redis-server", client.ping)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_"))},
        "REDIS_URL": url,
        "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
        "HEALTH_PORT": "0",
        "RETRY_BACKOFF": "200ms",
        "LOG_LEVEL": "warning",
    }
    cli = [sys.executable, "-m", "bananas.cli"]
    pools = [
        {"GROUP_ID": "general", "WORKER_CONCURRENCY": "8", "ENABLE_SCHEDULER": "false"},
        {"GROUP_ID": "general", "WORKER_CONCURRENCY": "8", "ENABLE_SCHEDULER": "false"},
        {
            "GROUP_ID": "images",
            "WORKER_MODE": "job-specialized",
            "WORKER_JOB_TYPES": "resize_image",
            "WORKER_CONCURRENCY": "4",
            "ENABLE_SCHEDULER": "false",
        },
        {"WORKER_MODE": "scheduler-only", "GROUP_ID": "scheduler"},
    ]
    try:
        for extra in pools:
            procs.append(
                subprocess.Popen(
                    [*cli, "worker", "--app", "shots_app:app"],
                    env={**env, **extra},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        dash_port = free_port()
        procs.append(
            subprocess.Popen(
                [*cli, "dashboard", "--port", str(dash_port)],
                env={**env, "BANANAS_DASHBOARD_REFRESH": "0"},
                stdout=subprocess.DEVNULL,
            )
        )
        base = f"http://127.0.0.1:{dash_port}"
        wait_for("the dashboard", lambda: httpx.get(base + "/api/workers").json()["workers"])
        seed_history(client, "bananas")
        app = Bananas(url)
        rng = random.Random(42)
        dead_id = ""
        for wave in range(8):
            specs = [
                app.spec(
                    "send_email",
                    {
                        "to": f"user{rng.randint(1, 9999)}@example.com",
                        "subject": "Your invoice is ready",
                    },
                    _priority="high",
                )
                for _ in range(25)
            ]
            specs += [
                app.spec(
                    "resize_image",
                    {"path": f"uploads/{rng.getrandbits(32):x}.jpg", "sizes": [320, 640, 1280]},
                )
                for _ in range(6)
            ]
            tier = "legacy" if wave in (2, 5) else "pro"
            specs.append(
                app.spec(
                    "sync_crm",
                    {
                        "account": {
                            "id": 4000 + wave,
                            "tier": tier,
                            "owner": "Ada <ada@example.com>",
                        },
                        "fields": ["email", "plan", "mrr"],
                    },
                )
            )
            handles = app.enqueue_many(specs)
            if tier == "legacy" and not dead_id:
                dead_id = handles[-1].id
            time.sleep(1.5)
        # A backlog bigger than the fleet, so the depth table has something to show.
        app.enqueue_many(
            [
                app.spec("generate_report", {"report_id": 9000 + i}, _priority="low")
                for i in range(180)
            ]
            + [
                app.spec("resize_image", {"path": f"bulk/{i}.png", "sizes": [320]})
                for i in range(240)
            ]
            + [
                app.spec(
                    "send_email",
                    {"to": f"list{i}@example.com", "subject": "Newsletter"},
                    _priority="normal",
                )
                for i in range(400)
            ]
            + [
                app.spec(
                    "send_email",
                    {"to": f"vip{i}@example.com", "subject": "Password reset"},
                    _priority="high",
                )
                for i in range(30)
            ]
        )
        app.enqueue_many(
            [
                app.spec("generate_report", {"report_id": i}, _delay="15m", _priority="low")
                for i in range(12)
            ]
        )
        wait_for(
            "the sync_crm job to be dead-lettered",
            lambda: httpx.get(f"{base}/api/jobs/{dead_id}").json()["state"] == "dead",
            60,
        )
        time.sleep(3)  # let the backlog start draining: in-flight and utilization show
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
            page.goto(base + "/")
            page.screenshot(path=str(OUT / "dashboard-overview.png"), full_page=True)
            page.goto(f"{base}/jobs/{dead_id}")
            page.screenshot(path=str(OUT / "dashboard-job.png"), full_page=True)
            browser.close()
        app.close()
        print(f"wrote {OUT / 'dashboard-overview.png'} and {OUT / 'dashboard-job.png'}")
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        client.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
