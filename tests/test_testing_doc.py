"""docs/testing.md's example runs as written: its two files (the README's
quick-start jobs and a user's test module) are written into a fresh project
and run by pytest in a fresh interpreter, where the `bananas_test_mode`
fixture comes only from the package's entry point. The broker URL points at
a port nothing listens on, and the project's folder is the working
directory: a test that reached a broker, or created the embedded one, fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
pytestmark = pytest.mark.timeout(120)


def doc_files() -> dict[str, str]:
    """The page's Python blocks that open with a `# path` comment, by path."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return {
        block.split("\n", 1)[0][2:].strip(): block for block in blocks if block.startswith("# ")
    }


def test_the_documented_example_passes_with_no_broker(tmp_path: Path) -> None:
    files = doc_files()
    assert set(files) == {"myproject/jobs.py", "tests/test_jobs.py"}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "myproject" / "__init__.py").write_text("")
    env = {
        **os.environ,
        "BANANAS_BROKER_URL": "redis://127.0.0.1:9/0",  # refused: no broker may be reached
        "PYTHONPATH": str(tmp_path),
    }
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout, out.stdout
    assert not (tmp_path / ".bananas").exists()  # the embedded broker was not created either


def test_the_fixture_is_what_makes_it_pass(tmp_path: Path) -> None:
    """Without the test mode the same enqueue reaches for the (refused) broker."""
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "jobs.py").write_text(doc_files()["myproject/jobs.py"])
    script = (
        "from myproject.jobs import send_email\n"
        "try:\n"
        "    send_email.enqueue(to='a@b.c', subject='hi')\n"
        "except Exception as exc:\n"
        "    from bananas.errors import BrokerUnavailable\n"
        "    print(isinstance(exc, BrokerUnavailable), type(exc).__name__)\n"
    )
    env = {**os.environ, "BANANAS_BROKER_URL": "redis://127.0.0.1:9/0"}
    env["PYTHONPATH"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # BrokerNotReached: the BrokerUnavailable of a connection never made.
    assert out.stdout.split()[0] == "True", out.stdout + out.stderr
