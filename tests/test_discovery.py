"""Processors from the `bananas.processors` entry-point group need no other change."""

from __future__ import annotations

import signal
from pathlib import Path

import redis
from support import WorkerFactory, wait_for


def install_processor(site: Path) -> None:
    (site / "thumbs_proc.py").write_text(
        "from bananas import Bananas\n"
        "app = Bananas()\n"
        "@app.job()\n"
        "async def thumbnail(size: int) -> str:\n"
        "    return f'thumb-{size}'\n"
    )
    dist = site / "thumbs_proc-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thumbs-proc\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bananas.processors]\nthumbs = thumbs_proc:app\n")


def test_entry_point_processor_is_discovered(
    workers: WorkerFactory, r: redis.Redis, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_processor(site)
    env = workers.env()
    w = workers.start("apps.core:app", PYTHONPATH=f"{site}:{env['PYTHONPATH']}")
    assert "thumbnail" in w.events("worker.started")[0]["job_types"]
    out = workers.cli("enqueue", "thumbnail", "--json", '{"size": 64}', "--wait", "10")
    assert out.returncode == 0, out.stderr
    assert '"result":"thumb-64"' in out.stdout
    w.signal(signal.SIGTERM)
    wait_for(lambda: w.proc.poll() is not None, 20, message="worker exit")
