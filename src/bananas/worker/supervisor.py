"""`bananas worker --processes N`: N worker processes sharing one configuration,
so one command uses a host's cores without an external supervisor.

The parent runs no jobs. It forwards SIGTERM/SIGINT to every child (each
drains as usual), restarts a child that dies on its own (with back-off, so a
crash loop does not spin), and exits with the worst exit code once all children
have stopped. Child i serves health on HEALTH_PORT + i.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

RESTART_BACKOFF_MAX = 30.0


def supervise(count: int, args: Sequence[str], health_port: int) -> int:
    stopping = False
    children: list[subprocess.Popen[bytes] | None] = [None] * count
    restarts = [0] * count

    def start(i: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["BANANAS_SUPERVISED"] = "1"
        if health_port:
            env["HEALTH_PORT"] = str(health_port + i)
        return subprocess.Popen([sys.executable, "-m", "bananas.cli", "worker", *args], env=env)

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(count):
        children[i] = start(i)
    codes = [0] * count
    next_start = [0.0] * count
    while True:
        alive = False
        for i, child in enumerate(children):
            if child is None:
                if not stopping and time.monotonic() >= next_start[i]:
                    children[i] = start(i)
                alive = alive or not stopping
                continue
            code = child.poll()
            if code is None:
                alive = True
                continue
            codes[i] = max(codes[i], code)
            if code == 2 and not stopping:  # bad configuration: restarting cannot help
                forward(signal.SIGTERM, None)
            if stopping:
                continue
            restarts[i] += 1
            delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** min(restarts[i], 6))
            print(
                f"bananas: worker process {child.pid} exited with {code}; restarting in {delay:g}s",
                file=sys.stderr,
                flush=True,
            )
            children[i] = None
            next_start[i] = time.monotonic() + delay
            alive = True
        if not alive:
            return max(codes)
        time.sleep(0.1)
