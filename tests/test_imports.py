"""Every module of the package imports on its own, as the first import of a
fresh interpreter.

An import cycle hides when a test happens to import the modules in a lucky
order (`import bananas.scheduler` failed with "partially initialized module"
while `import bananas` worked). So each module gets its own interpreter; they
run a few at a time to keep this fast on a small machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PARALLEL = 4


def package_modules() -> list[str]:
    """Dotted names of every module under src/bananas, found on disk (importing
    the package here to walk it would not matter, but this needs nothing)."""
    names = []
    for path in sorted((SRC / "bananas").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the CLI when imported; its package is checked instead
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def import_alone(modules: list[str], path: Path = SRC) -> dict[str, str]:
    """Import each module first thing in its own interpreter (`path` on
    PYTHONPATH); the failures' last stderr lines by module."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    failures: dict[str, str] = {}
    pending = list(modules)
    running: dict[str, subprocess.Popen[str]] = {}
    deadline = time.monotonic() + 120
    while pending or running:
        while pending and len(running) < PARALLEL:
            name = pending.pop()
            running[name] = subprocess.Popen(
                [sys.executable, "-c", f"import {name}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        name, proc = next(iter(running.items()))
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        del running[name]
        if proc.returncode != 0:
            failures[name] = err.strip().splitlines()[-1] if err.strip() else "no output"
    return failures


def test_modules_are_found() -> None:
    modules = package_modules()
    # The modules an import cycle once hid behind the package's import order.
    assert {"bananas.worker.maintenance", "bananas.observe.monitor", "bananas.loops"} <= set(
        modules
    )
    assert len(modules) > 40


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    failures = import_alone(package_modules())
    assert failures == {}, failures


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: two modules importing each other's names."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\nA = 1\n")
    (pkg / "b.py").write_text("from .a import A\nB = 2\n")
    failures = import_alone(["cyclic.a", "cyclic"], tmp_path)
    assert "partially initialized module" in failures["cyclic.a"], failures
    assert "cyclic" not in failures  # the package alone is fine
