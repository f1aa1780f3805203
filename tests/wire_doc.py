"""The field tables of docs/wire-format.md, parsed, and the SDKs' parsing of
results and records as their own code does it (Python `JobResult.from_dict` /
`Job.from_dict`, Go `strconv.ParseInt` / `time.Parse(time.RFC3339, ...)`).

Written from the document, never from Bananas' reader: a test that checks
what Bananas wrote against these tables fails when either drifts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DOC = Path(__file__).parent.parent / "docs" / "wire-format.md"

SDK_STATUSES = ("pending", "processing", "completed", "failed", "scheduled")
SDK_PRIORITIES = ("high", "normal", "low")
# Go's time.RFC3339 layout as time.Parse accepts it (a fraction is allowed).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
GO_INT = re.compile(r"[+-]?[0-9]+")  # what strconv.ParseInt(s, 10, 64) takes


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # the type cell as written
    written_by: str
    meaning: str

    def check(self, value: Any, *, in_hash: bool) -> None:
        """Assert `value` has the documented type (the forms of "Field types")."""
        t, where = self.type, f"field {self.name!r} = {value!r}"
        if t.startswith("one of"):
            words = re.findall(r"`([^`]+)`", t)
            assert value in words, f"{where}: expected one of {words}"
        elif t == "integer":
            if in_hash:
                assert isinstance(value, str) and re.fullmatch(r"[0-9]+", value), (
                    f"{where}: expected decimal digits"
                )
            else:
                assert isinstance(value, int) and not isinstance(value, bool), f"{where}: int"
        elif t == "timestamp":
            assert isinstance(value, str) and RFC3339.fullmatch(value), f"{where}: RFC 3339"
        elif t == "string":
            assert isinstance(value, str), f"{where}: expected a string"
        elif t == "object":
            assert isinstance(value, dict), f"{where}: expected an object"
        elif t == "JSON text":
            json.loads(value)
        elif t == "REAL":
            assert isinstance(value, float), f"{where}: expected a REAL"
        else:
            raise AssertionError(f"the doc's type {t!r} of {self.name!r} is not in 'Field types'")

    @property
    def always(self) -> bool:
        """Written by Bananas on every path (its meaning names no exception)."""
        return "Bananas" in self.written_by and not re.search(r"\bonly\b|\babsent\b", self.meaning)


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def table(heading: str) -> dict[str, Field]:
    """The first table after the heading that starts with `heading`."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows: list[list[str]] = []
    for line in lines[at + 1 :]:
        if line.startswith("|"):
            rows.append(_cells(line))
        elif rows:
            break
        elif line.startswith("#"):
            raise AssertionError(f"no table under {heading!r}")
    header = [h.lower() for h in rows[0]]
    out: dict[str, Field] = {}
    for row in rows[2:]:
        cell = dict(zip(header, row, strict=True))
        name = re.fullmatch(r"`([^`]+)`", cell.get("field", cell.get("column", "")))
        assert name, f"bad first cell in {row}"
        out[name.group(1)] = Field(
            name.group(1), cell["type"], cell.get("written by", "Bananas"), cell["meaning"]
        )
    return out


def result_fields() -> dict[str, Field]:
    return table("### Result: `bananas:result:{id}`")


def record_fields() -> dict[str, Field]:
    return table("### Job record: `bananas:job:{id}`")


def sqlite_result_columns() -> dict[str, Field]:
    return table("## The SQLite broker's results")


def check_result_hash(data: dict[str, str]) -> None:
    """A result hash Bananas wrote, against the doc: only documented fields,
    each of its type, every always-written one present."""
    fields = result_fields()
    assert set(data) <= set(fields), f"undocumented fields {set(data) - set(fields)}"
    for name, value in data.items():
        fields[name].check(value, in_hash=True)
    missing = {f.name for f in fields.values() if f.always} - set(data)
    assert not missing, f"always-written fields missing: {missing}"


def check_record(data: dict[str, Any]) -> None:
    fields = record_fields()
    for name, value in data.items():
        if name in fields and not (name == "max_retries" and value is None):
            fields[name].check(value, in_hash=False)


def python_sdk_result(job_id: str, data: dict[str, str]) -> dict[str, Any]:
    """What the Python SDK's RedisResultBackend.get_result makes of a hash:
    it raises (ResultNotFoundError) where this does."""
    completed_at = datetime.fromisoformat(data["completed_at"].replace("Z", "+00:00"))
    result = data.get("result")
    if result:
        result = json.loads(result)
    status = data["status"]
    assert status in SDK_STATUSES, f"JobStatus({status!r}) raises"
    return {
        "job_id": job_id,
        "status": status,
        "result": result,
        "error": data.get("error", ""),
        "completed_at": completed_at,
        "duration_ms": int(data.get("duration_ms", "0")),
    }


def go_reader_result(data: dict[str, str]) -> tuple[int, str]:
    """The Go RedisBackend.GetResult: it silently keeps 0 / the zero time when
    ParseInt / time.Parse fail, so here a failure raises instead."""
    duration = data.get("duration_ms", "0")
    assert GO_INT.fullmatch(duration), f"strconv.ParseInt({duration!r}) fails: Duration 0"
    completed_at = data["completed_at"]
    assert RFC3339.fullmatch(completed_at), f"time.Parse(RFC3339, {completed_at!r}) fails"
    return int(duration), completed_at


def python_sdk_job(data: dict[str, Any]) -> None:
    """The Python SDK's Job.from_dict (client.get_job), which raises on what it cannot read."""
    assert data["priority"] in SDK_PRIORITIES, f"JobPriority({data['priority']!r}) raises"
    assert data["status"] in SDK_STATUSES, f"JobStatus({data['status']!r}) raises"
    for key in ("created_at", "updated_at", "scheduled_for"):
        if data.get(key):
            datetime.fromisoformat(data[key].replace("Z", "+00:00"))
    for key in ("id", "name", "payload"):
        assert key in data, f"Job.from_dict: KeyError {key!r}"
