"""Handlers of the unique-job acceptance tests (tests/test_unique.py)."""

from __future__ import annotations

import os
import time

from bananas import Bananas

from .sink import sink

app = Bananas()


@app.job(unique_for="10m")
def hang(k: str) -> None:
    """Says it started (with its worker's pid), then runs until killed."""
    sink().rpush("test:unique:started", str(os.getpid()))
    time.sleep(3600)


@app.job(unique_for="10m")
def once(k: str) -> None:
    sink().incr("test:unique:runs", k)


@app.job(unique_for="10m", max_retries=0)
def fails(k: str) -> None:
    raise ValueError(f"{k} fails")
