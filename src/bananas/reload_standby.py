"""The standby worker of `bananas worker --reload`: a process that has already
started Python and imported what a worker needs, and waits. Starting a
worker is mostly that start-up (about 0.3 s of a 0.5 s restart on an idle
machine, several times more on a loaded one), so the reloader keeps one
standby ready and a restart only imports the app and connects.

It reads one line on stdin: a JSON list of the files changed since it was
started. If one of them is a module it has imported (Bananas' own code, say,
when Bananas itself is being edited), it re-executes itself to start cold;
otherwise it runs `bananas worker ARGS` as is. End of input (the reloader
stopped or replaced it) exits 0 without doing anything.

The app itself is never imported before the line arrives, so an edit of the
app while it waits is always in what it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys


def _preload() -> None:
    # What `bananas worker` imports on its way to worker.started (cli/worker.py
    # imports most of them lazily, which is right for every other command).
    from . import discovery, logs  # noqa: F401
    from .cli import main  # noqa: F401
    from .worker import Worker  # noqa: F401

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def _stale(changed: list[str]) -> bool:
    loaded = {
        os.path.realpath(path)
        for module in list(sys.modules.values())
        if isinstance(path := getattr(module, "__file__", None), str)
    }
    return any(os.path.realpath(path) in loaded for path in changed)


def main() -> None:
    args = sys.argv[1:]
    _preload()
    line = sys.stdin.readline()
    if not line:
        os._exit(0)
    if _stale(json.loads(line)):
        os.execv(sys.executable, [sys.executable, "-m", "bananas.cli", "worker", *args])
    from .cli import main as cli

    sys.argv = ["bananas", "worker", *args]
    cli(args=["worker", *args], prog_name="bananas")


if __name__ == "__main__":
    main()
