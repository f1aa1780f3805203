"""`bananas worker --reload`, for development only: restart the worker when a
Python file of the app changes, like `uvicorn --reload`.

The command becomes a small reloader that runs no jobs. It starts the worker
as a child process (`bananas worker` with the same flags, minus `--reload`)
and watches, with watchfiles (the `reload` extra):

  - the current directory, and
  - the folder of the app's top-level package or module (`--app`), when it
    lies outside the current directory,

recursively, for `*.py` / `*.pyx` / `*.pyd` files (watchfiles' PythonFilter;
`.venv`, `.git`, `__pycache__`, `.bananas` and other tool folders are not
watched). On a change it sends the worker SIGTERM, which drains as in
production: it stops fetching, puts prefetched jobs back and lets running
jobs finish (up to SHUTDOWN_TIMEOUT). Once that process has exited, a fresh
one imports the new code and starts. Changes made during the drain are in
what the new process imports, so they do not cause a second restart.

The fresh process is a standby (reload_standby.py) started ahead: Python and
Bananas already imported, the app not yet, so a restart costs the app's
import and the broker connection, not the interpreter's start-up. A standby
that has imported a file changed since it started re-executes itself cold.

A worker that exits on its own (the edit broke the import: exit 2) is not
restarted until the next change. SIGINT / SIGTERM (and SIGHUP, as SIGTERM)
to the reloader go to the worker, once (not while it drains for a restart, which it does already: a
second signal forces its exit); no new worker starts then, and the reloader
exits with the worker's status. The worker runs
in its own process group, so the terminal's Ctrl-C reaches it only through
the reloader, not twice (a second signal would force its exit).

Not for production: restarting on file changes turns an editor's save into
a drain, and the watcher costs a thread and inotify watches.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, ModuleType

from .errors import ConfigError

EXTRA = "reload"
POLL = 0.05  # seconds between looks at the change flag and the worker


def load_watchfiles() -> ModuleType:
    try:
        import watchfiles
    except ImportError:
        raise ConfigError(
            f"--reload needs the watchfiles package, in the {EXTRA!r} extra: "
            f"pip install 'bananas[{EXTRA}]' (development only)"
        ) from None
    return watchfiles


def app_folder(app_target: str | None) -> Path | None:
    """Where the app's top-level package (or module) lives, found without
    importing it; None when it cannot be found."""
    if not app_target:
        return None
    top = app_target.partition(":")[0].split(".")[0]
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as discovery.py: the current directory is importable
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return Path(spec.origin).resolve().parent if spec.origin else None


def watched_folders(app_target: str | None) -> list[Path]:
    cwd = Path.cwd().resolve()
    folders = [cwd]
    found = app_folder(app_target)
    if found is not None and not found.is_relative_to(cwd) and "site-packages" not in found.parts:
        folders.append(found)
    return folders


class Reloader:
    """Runs the worker as a child and restarts it on changes (see above)."""

    def __init__(self, worker_args: Sequence[str], folders: Sequence[Path]) -> None:
        self.watchfiles = load_watchfiles()
        self.args = list(worker_args)
        self.folders = list(folders)
        self.child: subprocess.Popen[bytes] | None = None
        self.standby: subprocess.Popen[bytes] | None = None
        self._changed: list[str] = []
        self._since_standby: list[str] = []  # every change since the standby started
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stopping = False
        self._draining = False  # the worker was sent SIGTERM for a restart

    def run(self) -> int:
        # SIGHUP too: the worker is in its own process group, so a closed
        # terminal would not reach it; it would outlive the reloader.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        shown = ", ".join(str(f) for f in self.folders)
        self._say(f"watching {shown} for Python file changes (development only)")
        watcher = threading.Thread(target=self._watch, name="reload-watch", daemon=True)
        watcher.start()
        self._start()
        waiting = False  # the worker exited on its own; a change restarts it
        try:
            while not self._stopping:
                self._wake.wait(POLL)
                self._wake.clear()
                if self._stopping:
                    break
                child = self.child
                if child is not None and child.poll() is not None and not waiting:
                    waiting = True
                    self._say(f"the worker exited with {child.returncode}; edit a file to restart")
                changed = self._take_changes()
                if changed:
                    waiting = False
                    self._restart(changed)
            return self._finish()
        finally:
            self._stop.set()

    def _watch(self) -> None:
        filter_ = _python_filter(self.watchfiles)
        for changes in self.watchfiles.watch(
            *self.folders,
            watch_filter=filter_,
            stop_event=self._stop,
            raise_interrupt=False,
            rust_timeout=500,
            yield_on_timeout=False,
        ):
            paths = sorted(path for _, path in changes)
            with self._lock:
                self._changed.extend(paths)
                self._since_standby.extend(paths)
            self._wake.set()

    def _take_changes(self) -> list[str]:
        with self._lock:
            changed, self._changed = self._changed, []
        return changed

    def _restart(self, changed: list[str]) -> None:
        first = os.path.relpath(changed[0])
        more = f" (+{len(changed) - 1} more)" if len(changed) > 1 else ""
        child = self.child
        if child is not None and child.poll() is None:
            self._say(f"{first}{more} changed: draining worker {child.pid}, then restarting")
            self._draining = True
            child.send_signal(signal.SIGTERM)
            child.wait()
            self._draining = False
        else:
            self._say(f"{first}{more} changed: starting the worker")
        if not self._stopping:
            self._take_changes()  # already in what the new process imports
            self._start()

    def _start(self) -> None:
        """Hand the work to the standby and start the next standby."""
        standby = self.standby or self._spawn_standby()
        with self._lock:
            changed, self._since_standby = self._since_standby, []
        assert standby.stdin is not None
        try:
            standby.stdin.write(json.dumps(changed).encode() + b"\n")
            standby.stdin.close()
        except OSError:  # it died while waiting: start the worker cold
            standby = subprocess.Popen(
                [sys.executable, "-m", "bananas.cli", "worker", *self.args], process_group=0
            )
        self.child = standby
        self.standby = self._spawn_standby()

    def _spawn_standby(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bananas.reload_standby", *self.args],
            stdin=subprocess.PIPE,
            process_group=0,  # Ctrl-C reaches the worker once, through _on_signal
        )

    def _end_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is None:
            return
        with contextlib.suppress(OSError):
            if standby.stdin is not None:
                standby.stdin.close()  # end of input: it exits 0
        try:
            standby.wait(5)
        except subprocess.TimeoutExpired:
            standby.kill()
            standby.wait()

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        first = not self._stopping
        self._stopping = True
        self._wake.set()
        child = self.child
        if child is None or child.poll() is not None:
            return
        if first and self._draining:
            return  # draining for a restart already; a second signal forces its exit
        child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    def _finish(self) -> int:
        self._end_standby()
        child = self.child
        if child is None:
            return 0
        code = child.wait()
        return 128 - code if code < 0 else code

    @staticmethod
    def _say(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"bananas: reload: {text}", file=sys.stderr, flush=True)


def _python_filter(watchfiles: ModuleType) -> object:
    class AppFiles(watchfiles.PythonFilter):  # type: ignore[misc, name-defined]
        ignore_dirs = (*watchfiles.DefaultFilter.ignore_dirs, ".bananas", ".ruff_cache")

    return AppFiles()


def without_reload(args: Sequence[str]) -> list[str]:
    return [arg for arg in args if arg != "--reload"]
