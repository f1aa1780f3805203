"""Per-library virtualenvs under bench/.envs/<name>, installed from pinned requirements."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from .adapters import Adapter

INSTALL_TIMEOUT = 900


def ensure(adapter: Adapter) -> None:
    """Create or refresh the adapter's venv when its requirements changed."""
    req = adapter.requirements
    if req is None:
        if not adapter.python.exists():
            raise RuntimeError(f"{adapter.python} missing: run `make venv` first")
        return
    stamp = adapter.env_dir / ".bench-installed"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and adapter.python.exists():
        return
    if not adapter.python.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(adapter.env_dir)], check=True, timeout=120
        )
    done = subprocess.run(
        [
            str(adapter.python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(req),
        ],
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError("pip install failed: " + " | ".join(lines[-3:]))
    stamp.write_text(digest)


VERSIONS = """
import json, sys
from importlib.metadata import version, PackageNotFoundError
out = {"python": sys.version.split()[0]}
for name in sys.argv[1:]:
    try:
        out[name] = version(name)
    except PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def versions(adapter: Adapter) -> dict[str, str | None]:
    done = subprocess.run(
        [str(adapter.python), "-c", VERSIONS, *adapter.packages],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))
