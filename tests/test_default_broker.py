"""The default embedded broker is the project's, whatever the working directory:
a real worker started in one folder and a `bananas enqueue --wait` from
another folder of the same project meet on one `.bananas/queue.db`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import WorkerFactory, WorkerProcess, wait_for

from bananas.config import Settings
from bananas.project import default_sqlite_url, project_root


@pytest.mark.parametrize("marker", ["pyproject.toml", ".git", ".bananas"])
def test_the_nearest_marked_folder_is_the_project(tmp_path: Path, marker: str) -> None:
    top = tmp_path / "proj"
    deep = top / "src" / "pkg"
    deep.mkdir(parents=True)
    if marker == "pyproject.toml":
        (top / marker).write_text("[project]\nname = 'x'\n")
    else:
        (top / marker).mkdir()
    assert project_root(deep, ceilings=[tmp_path]) == top
    assert project_root(top, ceilings=[tmp_path]) == top
    assert default_sqlite_url(deep) == f"sqlite:///{top}/.bananas/queue.db"


def test_nearest_marker_wins_and_no_marker_means_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "outer" / "inner" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / ".git").mkdir()
    (tmp_path / "outer" / "inner" / "pyproject.toml").write_text("")
    assert project_root(tmp_path / "outer" / "inner" / "deep", [tmp_path]) == (
        tmp_path / "outer" / "inner"
    )
    (tmp_path / "bare" / "sub").mkdir(parents=True)
    assert project_root(tmp_path / "bare" / "sub", [tmp_path]) == tmp_path / "bare" / "sub"


def test_home_and_temp_directories_are_never_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".bananas").mkdir(parents=True)  # e.g. a worker once started in ~
    (home / ".git").mkdir()  # a dotfiles repository
    (home / "scratch" / "sub").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert project_root(home / "scratch" / "sub") == home / "scratch" / "sub"
    assert project_root(home) == home  # started in ~ itself: the current directory
    monkeypatch.chdir(home / "scratch" / "sub")
    url = Settings.load(env={"HOME": str(home)}).effective_broker_url
    assert url == f"sqlite:///{home}/scratch/sub/.bananas/queue.db"


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bananas.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("marker", "worker_dir", "client_dir"),
    [
        # The case: no project file at all; the worker made .bananas/ first.
        (None, ".", "sub/deeper"),
        (".git", "sub", "."),
        ("pyproject.toml", "sub/deeper", "sub"),
    ],
)
def test_a_worker_and_an_enqueue_from_two_folders_share_one_broker(
    tmp_path: Path, marker: str | None, worker_dir: str, client_dir: str
) -> None:
    project = tmp_path / "project"
    (project / "sub" / "deeper").mkdir(parents=True)
    if marker == ".git":
        (project / ".git").mkdir()
    elif marker == "pyproject.toml":
        (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    factory = WorkerFactory("sqlite:///unused.db", tmp_path)
    env = factory.env()
    del env["BANANAS_BROKER_URL"]  # the default broker is what is tested
    env["TEST_SINK_URL"] = f"sqlite:///{tmp_path}/sink.db"
    db = project / ".bananas" / "queue.db"
    worker = WorkerProcess(
        ["worker", "--app", "apps.core:app"], env, tmp_path / "worker.log", cwd=project / worker_dir
    )
    try:
        worker.wait_started()
        (started,) = worker.events("worker.started")
        assert started["broker"] == f"sqlite:///{db}", started  # absolute, the project's file
        wait_for(db.exists, 10, message=str(db))
        payload = '{"a": 2, "b": 3}'
        done = _cli(project / client_dir, env, "enqueue", "add", "--json", payload, "--wait", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        reply = json.loads(done.stdout.splitlines()[-1])
        assert reply == {"status": "completed", "result": 5, "error": None}
        status = _cli(project / client_dir, env, "status", "--json")
        assert json.loads(status.stdout)["broker"] == f"sqlite:///{db}"
        assert sorted(p.name for p in project.rglob("queue.db")) == ["queue.db"], "one file"
    finally:
        worker.stop()
