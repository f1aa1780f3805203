"""Idle waits of the SQLite broker (for a job, for a result) without pub/sub.

One watcher thread per broker, with its own read connection, polls
`PRAGMA data_version` (no I/O; it changes when any other connection, this
broker's own included, commits) and re-runs the waiting checks only after a
change. However many coroutines or threads wait, an idle broker costs one
pragma per interval and no event-loop wake-ups.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from .sqlite_db import Store, wrap

Check = Callable[[Store], Any]  # returns None while the wait must go on
Deliver = Callable[[Any, BaseException | None], None]


class Wait:
    """One pending wait: its check, and how to hand the outcome to its waiter."""

    def __init__(self, check: Check, deliver: Deliver) -> None:
        self.check = check
        self.deliver = deliver
        self.fresh = True  # checked at once on registration, whatever the version
        self.done = False

    def probe(self, store: Store) -> None:
        value = self.check(store)
        if value is not None:
            self.finish(value, None)

    def finish(self, value: Any, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.deliver(value, error)


class Watcher:
    def __init__(self, open_store: Callable[[], Store], interval: float) -> None:
        self._open = open_store
        self._interval = interval
        self._cond = threading.Condition()
        self._waits: set[Wait] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, wait: Wait) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the broker was closed")
            self._waits.add(wait)
            if self._thread is None:
                # Daemon: a broker nobody closed must not hold the interpreter's exit.
                self._thread = threading.Thread(
                    target=self._run, name="bananas-sqlite-watch", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, wait: Wait) -> None:
        with self._cond:
            self._waits.discard(wait)

    def stop(self) -> threading.Thread | None:
        """Tell the thread to end (it holds no reference to the broker, so a
        broker nobody closed can be collected and stop it from a finalizer)."""
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        return thread

    def close(self) -> None:
        thread = self.stop()
        if thread is not None:
            thread.join(5.0)

    def _pending(self) -> list[Wait] | None:
        """Block until there is something to watch; None once closed."""
        with self._cond:
            while not self._waits and not self._closed:
                self._cond.wait()
            return None if self._closed else list(self._waits)

    def _run(self) -> None:
        store: Store | None = None
        seen: int | None = None
        try:
            while (waits := self._pending()) is not None:
                try:
                    if store is None:
                        store = self._open()
                    version = store.version()
                    for wait in waits:
                        if wait.fresh or version != seen:
                            wait.fresh = False
                            wait.probe(store)
                    seen = version
                except Exception as exc:
                    # The waiters get the error (a broker error for SQLite's own);
                    # the watcher reconnects for the next waits.
                    error = wrap(exc) if isinstance(exc, sqlite3.Error | OSError) else exc
                    for wait in waits:
                        wait.finish(None, error)
                    if store is not None:
                        store.close()
                    store, seen = None, None
                with self._cond:
                    if not self._closed and not any(w.fresh for w in self._waits):
                        self._cond.wait(self._interval)
        finally:
            if store is not None:
                store.close()
