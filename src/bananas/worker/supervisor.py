"""`bananas worker --processes N`: N worker processes sharing one configuration,
so one command uses a host's cores without an external supervisor.

The parent runs no jobs. It forwards SIGTERM/SIGINT to every child (each
drains as usual) and restarts a child that dies on its own (with back-off, so a
crash loop does not spin), except, in a `--burst` pool, a child that exits 0:
it found its queues empty. A child that exits 2 (bad configuration, an app
that cannot be imported) stops them all: restarting cannot help. Child i
serves health on HEALTH_PORT + i.

Exit code, once all children have stopped: 2 if any child reported bad
configuration; else the worst of the children's last exits, where a child
killed by signal N counts as 128 + N (the shell's convention), so a signal
death is never read as success. A crash that was followed by a restart is
reported on stderr when it happens; the exit code says how the pool stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

RESTART_BACKOFF_MAX = 30.0
CONFIG_ERROR = 2  # what the CLI exits with on bad configuration (cli/common.py)


def exit_status(returncode: int) -> int:
    """A child's `Popen.returncode` as a shell exit status: -N (killed by
    signal N) becomes 128 + N, so it cannot compare below success."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with {returncode}"


def pool_status(last: Sequence[int]) -> int:
    """The supervisor's exit status from each child's last `returncode`. A
    configuration error wins: the siblings it stopped with SIGTERM (perhaps
    before their handlers were installed, so -15) must not turn 2 into 143."""
    if CONFIG_ERROR in last:
        return CONFIG_ERROR
    return max((exit_status(code) for code in last), default=0)


def supervise(
    count: int, args: Sequence[str], health_port: int, *, restart_done: bool = True
) -> int:
    """Run `count` children until they all stop; `restart_done=False` (a burst
    pool) leaves a child that exited 0 on its own stopped: its work is done."""
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

    def say(text: str) -> None:
        # stderr may be gone (a closed pipe): the exit code still tells.
        with contextlib.suppress(OSError, ValueError):
            print(f"bananas: {text}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(count):
        children[i] = start(i)
    last = [0] * count
    next_start = [0.0] * count
    finished = [False] * count
    while True:
        alive = False
        for i, child in enumerate(children):
            if child is None and finished[i]:
                continue
            if child is None:
                if not stopping and time.monotonic() >= next_start[i]:
                    children[i] = start(i)
                alive = alive or not stopping
                continue
            code = child.poll()
            if code is None:
                alive = True
                continue
            last[i] = code
            if code == CONFIG_ERROR and not stopping:  # restarting cannot help
                forward(signal.SIGTERM, None)
            if code == 0 and not restart_done:
                children[i] = None
                finished[i] = True
                continue
            if stopping:
                # Siblings stopped because of a configuration error are no news.
                if code < 0 and CONFIG_ERROR not in last:
                    say(f"worker process {child.pid} {describe_exit(code)} while stopping")
                children[i] = None
                continue
            restarts[i] += 1
            delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** min(restarts[i], 6))
            say(f"worker process {child.pid} {describe_exit(code)}; restarting in {delay:g}s")
            children[i] = None
            next_start[i] = time.monotonic() + delay
            alive = True
        if not alive:
            return pool_status(last)
        time.sleep(0.1)
