"""The pytest plugin of the test mode (registered by the `pytest11` entry
point in pyproject.toml; `-p no:bananas` turns it off). It only defines the
fixture: nothing is imported or patched until a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from .app import Bananas
    from .testing import TestMode


class StartTestMode(Protocol):
    def __call__(
        self, app: Bananas, *, inline: bool = False, processes: bool = False
    ) -> TestMode: ...


@pytest.fixture
def bananas_test_mode() -> Iterator[StartTestMode]:
    """`jobs = bananas_test_mode(app)`: `app`'s jobs run in memory, through the
    production codec and job runner, until the test ends (see docs/testing.md)."""
    from .testing import TestMode

    started: list[TestMode] = []

    def start(app: Bananas, *, inline: bool = False, processes: bool = False) -> TestMode:
        mode = TestMode(app, inline=inline, processes=processes).start()
        started.append(mode)
        return mode

    yield start
    for mode in reversed(started):
        mode.stop()


__all__ = ["StartTestMode", "bananas_test_mode"]
