"""Example job handlers for the deployment files (BANANAS_APP=myproject.jobs:app).

The Compose files and Kubernetes manifests name these job types in
WORKER_JOB_TYPES, so the pools there are real configurations:

- CPU-bound (process executor): generate_report, resize_image
- I/O-bound (async): send_email, fetch_url
- on route gpu (only workers with WORKER_ROUTING_KEYS naming gpu take it):
  transcode_video
- housekeeping on a schedule: cleanup (every 5 minutes, exactly once per firing)

Build the image with your own code instead:
    docker build -f deploy/Dockerfile.worker --build-arg APP_DIR=path/to/app .
(APP_DIR is copied to /app and is importable; an APP_DIR/requirements.txt is installed.)
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request

from bananas import Bananas

app = Bananas()


@app.job(priority="high", timeout="30s", max_retries=5)
async def send_email(to: str, subject: str, body: str = "") -> dict[str, str]:
    """Stand-in for an SMTP/API call: I/O-bound, many can run at once."""
    await asyncio.sleep(0.05)
    return {"to": to, "subject": subject, "status": "sent"}


@app.job(timeout="1m")
async def fetch_url(url: str) -> dict[str, int | str]:
    def get() -> int:
        with urllib.request.urlopen(url, timeout=30) as response:
            return len(response.read())

    size = await asyncio.to_thread(get)
    return {"url": url, "bytes": size}


@app.job(priority="low", executor="process", timeout="10m")
def generate_report(report_id: int, rounds: int = 200_000) -> str:
    """CPU-bound: runs in the worker's process pool, one core per job."""
    digest = str(report_id).encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@app.job(executor="process", timeout="5m")
def resize_image(image_id: int, width: int) -> dict[str, int]:
    pixels = sum((i * width) % 255 for i in range(width * 100))
    return {"image_id": image_id, "width": width, "checksum": pixels % 65536}


@app.job(route="gpu", timeout="30m", max_retries=1)
def transcode_video(video_id: int, codec: str = "h264") -> dict[str, int | str]:
    """Stand-in for GPU work (a library call that releases the GIL): runs only
    on the gpu pool, whose nodes have the device."""
    frames = sum(i % 7 for i in range(video_id % 1000 * 100))
    return {"video_id": video_id, "codec": codec, "frames": frames}


@app.periodic(every="5m", priority="low")
def cleanup() -> int:
    """Housekeeping. Any number of schedulers may run: each firing runs once."""
    return 0
