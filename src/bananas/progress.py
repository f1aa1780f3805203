"""Job progress: what `current_job().set_progress(fraction, message)` accepts,
how often it reaches the broker, and the process-pool child's side of it.

Throttling (the same in the worker and in a process-pool child): the first
report of a job is sent at once; reports within the next PROGRESS_INTERVAL
are coalesced, only the latest kept, and that one is sent when the interval
ends; and the latest value is always written before the job's outcome
(complete, retry, dead letter) is recorded. So a tight loop calling
set_progress costs at most two broker writes a second per job, and a job
that never calls it costs nothing (worker/progress.py).
"""

from __future__ import annotations

import numbers
import threading
import time
from collections.abc import Callable
from typing import Any

PROGRESS_INTERVAL = 0.5  # seconds: at most one broker write per job per interval
MAX_PROGRESS_MESSAGE = 500  # characters; a longer message is cut, ending in "…"


def check_progress(fraction: object, message: object) -> tuple[float, str]:
    """The (fraction, message) to store; TypeError / ValueError naming what is wrong."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise TypeError(
            "set_progress(fraction, message): fraction must be a number from 0 to 1 "
            f"(0.4 for 40%), got {type(fraction).__name__} {fraction!r}"
        )
    value = float(fraction)
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ValueError(
            "set_progress(fraction, message): fraction must be from 0 to 1 "
            f"(0.4 for 40%), got {fraction!r}"
        )
    if not isinstance(message, str):
        raise TypeError(
            "set_progress(fraction, message): message must be a str, "
            f"got {type(message).__name__} {message!r}"
        )
    if len(message) > MAX_PROGRESS_MESSAGE:
        message = message[: MAX_PROGRESS_MESSAGE - 1] + "…"
    return value, message


class ChildProgress:
    """`set_progress` in a process-pool child: `send((slot, fraction,
    message))` down the pool's progress pipe to the worker, throttled as
    above (a timer thread sends the coalesced latest value); `close()`, before
    the child returns the job's outcome, sends what is still unsent, so the
    worker has the last value before it settles the job."""

    def __init__(
        self, send: Callable[[Any], None], slot: int, interval: float = PROGRESS_INTERVAL
    ) -> None:
        self._send = send
        self._slot = slot
        self._interval = interval
        self._lock = threading.Lock()
        self._latest: tuple[float, str] | None = None
        self._sent_at = float("-inf")
        self._timer: threading.Timer | None = None
        self._closed = False

    def report(self, job: Any, fraction: float, message: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._latest = (fraction, message)
            if self._timer is not None:
                return  # the timer sends the latest
            wait = self._sent_at + self._interval - time.monotonic()
            if wait <= 0:
                self._send_locked()
                return
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed:
                self._send_locked()

    def _send_locked(self) -> None:
        latest, self._latest = self._latest, None
        if latest is None:
            return
        self._sent_at = time.monotonic()
        try:
            self._send((self._slot, *latest))
        except (OSError, ValueError):  # the worker is gone: progress is best effort
            self._closed = True

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._closed:
                self._send_locked()
            self._closed = True
