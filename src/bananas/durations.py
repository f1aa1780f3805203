"""Human durations ("500ms", "1s", "5m", "1h") to seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str | float | int) -> float:
    """Parse a duration to seconds; a bare number means seconds.

    Raises ValueError with a message saying what is allowed.
    """
    if isinstance(text, bool):
        raise ValueError("expected a duration like 500ms, 1s, 5m or 1h")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError("expected a duration like 500ms, 1s, 5m or 1h")
    value, unit = match.groups()
    return float(value) * _UNITS[unit or "s"]
