"""Chaos scale: `make chaos` sets CHAOS_FULL=1 for the figures in
docs/reliability.md; `make test` runs the same scenarios shortened."""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("CHAOS_FULL") == "1"


def scale(full: int, short: int) -> int:
    return full if FULL else short


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> dict[str, object]:
    """A scenario's figures; printed so `make chaos` output carries them."""
    figures: dict[str, object] = {"scenario": request.node.name, "full": FULL}
    yield figures  # type: ignore[misc]
    print(f"\nCHAOS {figures}")
