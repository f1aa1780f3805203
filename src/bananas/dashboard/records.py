"""Reading stored records for display: tolerant decoding (a page shows what it
can of a malformed record instead of failing), times and JSON as text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

PREVIEW_CHARS = 120


def parse_time(value: Any) -> float | None:
    """Unix seconds of an ISO 8601 text (as records carry), None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def pretty_json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def load_fields(raw: bytes | None) -> dict[str, Any] | None:
    """A record's fields, None when it is missing or not a JSON object."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def preview(payload: Any) -> str:
    text = orjson.dumps(payload).decode() if payload is not None else ""
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def whole_number(value: Any) -> int | None:
    """An int field as shown: None unless the record holds a number there."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


__all__ = ["PREVIEW_CHARS", "load_fields", "parse_time", "pretty_json", "preview", "whole_number"]
