"""The package as pip sees it: every extra the image, its build script and the
docs name exists in pyproject.toml, and a build prints no setuptools
deprecation warning (the `project.license` table was reported three times per
`pip install`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from deploytools import DEPLOY, DOCKERFILE, ROOT, dockerfile_instructions

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])


def _named_extras(value: str) -> set[str]:
    return {name.strip() for name in value.strip('"').split(",") if name.strip()}


def test_the_image_installs_only_extras_that_exist() -> None:
    (arg,) = [
        i.args
        for i in dockerfile_instructions()
        if i.keyword == "ARG" and i.args.startswith("BANANAS_EXTRAS")
    ]
    _, _, default = arg.partition("=")
    assert _named_extras(default) <= EXTRAS, (arg, sorted(EXTRAS))
    script = (DEPLOY / "docker" / "build-venv.sh").read_text()
    (fallback,) = re.findall(r"EXTRAS=\$\{BANANAS_EXTRAS-([^}]*)\}", script)
    assert _named_extras(fallback) <= EXTRAS, (fallback, sorted(EXTRAS))


def test_docs_name_only_extras_that_exist() -> None:
    texts = [ROOT / "README.md", DOCKERFILE, *sorted((ROOT / "docs").glob("*.md"))]
    for path in texts:
        text = path.read_text()
        named = set(re.findall(r"`(\w+)` extra", text))
        named |= set(re.findall(r"bananas\[(\w+)\]", text))
        assert named <= EXTRAS, f"{path.name} names extras {sorted(named - EXTRAS)}"


def test_the_build_context_holds_the_license_files() -> None:
    copied = " ".join(
        i.args for i in dockerfile_instructions() if i.keyword == "COPY" and i.stage == 0
    )
    for name in PYPROJECT["project"].get("license-files", []):
        assert (ROOT / name).is_file(), name
        assert name in copied.split(), f"the Dockerfile's build stage does not COPY {name}"


@pytest.mark.timeout(300)
def test_building_the_wheel_warns_of_nothing(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), context],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    output = build.stdout + build.stderr
    assert build.returncode == 0, output[-3000:]
    assert "deprecat" not in output.lower(), output[-3000:]
    (wheel,) = (tmp_path / "dist").glob("bananas-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"License-Expression: MIT" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
