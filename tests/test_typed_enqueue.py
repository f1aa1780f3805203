"""The typed enqueue form, `fn.options(...).enqueue(...)`: mypy checks a
user's calls against the handler's own signature (run in a subprocess on
tests/typecheck/user_jobs.py, whose `# error:` comments say which lines mypy
must flag and with what), and at run time the form stores what the untyped
form stores, through the same checks."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from bananas import ArgumentsError, Bananas, BananasError
from bananas.config import Settings

MODULE = Path(__file__).parent / "typecheck" / "user_jobs.py"
pytestmark = pytest.mark.timeout(120)


def expected_errors() -> dict[int, str]:
    """Line number -> the fragment mypy's message must contain."""
    lines = MODULE.read_text().splitlines()
    marks = (re.search(r"# error: (.+)$", line) for line in lines)
    return {n: m.group(1) for n, m in enumerate(marks, start=1) if m}


def test_mypy_flags_exactly_the_wrong_calls(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), str(MODULE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
    )
    reported: dict[int, list[str]] = {}
    for match in re.finditer(r"user_jobs\.py:(\d+): error: (.*)", out.stdout):
        reported.setdefault(int(match.group(1)), []).append(match.group(2))
    expected = expected_errors()
    assert len(expected) == 5
    # Every correct call passes (no other line is reported) ...
    assert set(reported) == set(expected), out.stdout + out.stderr
    # ... and each wrong one is reported for what is wrong with it.
    for line, fragment in expected.items():
        assert any(fragment in message for message in reported[line]), (line, reported[line])


def test_the_typed_form_enqueues_what_the_untyped_form_does(tmp_path: Path) -> None:
    from typecheck import user_jobs as jobs

    jobs.app.configure(Settings(broker_url=f"sqlite:///{tmp_path}/queue.db"))
    try:
        handles = jobs.correct()
        record = _record(jobs.app, "x")  # options(job_id="x"), positional arguments
        assert record["payload"] == {"to": "a@b.c", "subject": "hi"}
        assert record["status"] == "scheduled"
        high = _record(jobs.app, handles[1].id)
        assert high["priority"] == "high" and high["payload"]["cc"] == ""
        report = _record(jobs.app, handles[3].id)
        assert report["max_retries"] == 0 and report["description"] == "monthly"
        assert report["payload"] == {"report_id": 7}
        # What mypy flags is refused at run time as well (argument types
        # excepted: JSON carries them and the handler gets them as sent).
        for wrong in (jobs.misspelt, jobs.missing, jobs.positional_untyped):
            with pytest.raises(ArgumentsError):
                wrong()
        with pytest.raises(BananasError, match="unknown enqueue option 'dealy'"):
            jobs.misspelt_option()
    finally:
        jobs.app.close()


def _record(app: Bananas, job_id: str) -> dict[str, Any]:
    async def read() -> bytes | None:
        broker = app.new_broker()
        try:
            return await broker.get_record(job_id)
        finally:
            await broker.close()

    raw = asyncio.run(read())
    assert raw is not None, job_id
    decoded: dict[str, Any] = orjson.loads(raw)
    return decoded
