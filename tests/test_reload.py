"""`bananas worker --reload` with real processes: editing the app's file
restarts the worker within 2 s (from the write to the new process's
`worker.started`), the new process runs the new code, and a job running at
that moment finishes on the old process (drained), once, not lost."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Backend, WorkerFactory, WorkerProcess, both_brokers, wait_for

from bananas import Bananas

RESTART_BOUND = 2.0  # seconds from the write to the new worker.started

APP = """
import os
import time
from pathlib import Path

from bananas import Bananas

app = Bananas()
VERSION = {version}
OUT = Path(os.environ["RELOAD_TEST_DIR"])


@app.job()
def version() -> int:
    return VERSION


@app.job()
def slow(k: str, seconds: float) -> int:
    with open(OUT / (k + ".started"), "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep(seconds)
    with open(OUT / (k + ".done"), "a") as f:
        f.write(f"{{os.getpid()}} v{{VERSION}}\\n")
    return VERSION
"""


class Project:
    def __init__(self, root: Path, workers: WorkerFactory) -> None:
        self.root = root
        self.file = root / "reloadapp.py"
        self.workers = workers
        self.process: WorkerProcess | None = None
        self.write(1)

    def write(self, version: int, text: str | None = None) -> float:
        """Rewrite the app file; the wall-clock time of the write."""
        written = time.time()
        self.file.write_text(text if text is not None else APP.format(version=version))
        return written

    def start(self, *args: str) -> WorkerProcess:
        env = self.workers.env(RELOAD_TEST_DIR=str(self.root))
        env["PYTHONPATH"] = f"{self.root}{os.pathsep}{env['PYTHONPATH']}"
        self.process = WorkerProcess(
            ["worker", "--app", "reloadapp:app", "--reload", *args],
            env,
            self.root / "worker.log",
            cwd=self.root,
        )
        return self.process

    def started(self) -> list[dict[str, object]]:
        assert self.process is not None
        return self.process.events("worker.started")

    def wait_started(self, count: int, timeout: float = 20) -> dict[str, object]:
        assert self.process is not None
        process = self.process
        wait_for(
            lambda: len(self.started()) >= count or process.proc.poll() is not None,
            timeout,
            message=f"worker.started #{count}",
        )
        assert len(self.started()) >= count, process.output()[-3000:]
        return self.started()[count - 1]

    def stop(self) -> None:
        if self.process is None:
            return
        pids = [int(str(e["pid"])) for e in self.started()]
        self.process.stop()  # the reloader's own group
        for pid in pids:  # each worker has its own process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def project(tmp_path: Path, workers: WorkerFactory) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    made = Project(root, workers)
    yield made
    made.stop()


def _client(target: Backend) -> Bananas:
    return Bananas(target.url)


@both_brokers
def test_an_edit_restarts_the_worker_within_2s_with_the_new_code(
    project: Project, target: Backend
) -> None:
    process = project.start()
    project.wait_started(1)
    client = _client(target)
    try:
        assert client.enqueue("version").result(timeout=20) == 1
        for n in (2, 3, 4):
            time.sleep(0.3)  # mtime granularity: each edit must be seen as one
            written = project.write(n)
            started = project.wait_started(n, timeout=10)
            took = float(str(started["ts"])) - written
            print(f"edit {n}: worker.started {took:.3f} s after the write")
            assert 0 < took < RESTART_BOUND, (n, took, process.output()[-3000:])
            assert client.enqueue("version").result(timeout=20) == n
    finally:
        client.close()
    ids = [e["worker_id"] for e in project.started()]
    assert len({e["pid"] for e in project.started()}) == 4, ids  # a fresh process each time
    stopped = [e["worker_id"] for e in process.events("worker.stopped")]
    assert stopped == ids[:3]  # each old one drained and stopped before the next
    process.signal(signal.SIGHUP)  # a closed terminal: the worker drains too
    assert process.wait(20) == 0, process.output()[-3000:]
    assert [e["worker_id"] for e in process.events("worker.stopped")] == ids


@both_brokers
def test_a_running_job_is_drained_on_the_old_process_not_lost(
    project: Project, target: Backend
) -> None:
    process = project.start()
    first = project.wait_started(1)
    client = _client(target)
    try:
        job = client.enqueue("slow", k="long", seconds=1.5)
        wait_for((project.root / "long.started").exists, 20, message="the job to start")
        project.write(2)
        wait_for(lambda: process.events("worker.draining"), 5, message="the drain")
        started = project.wait_started(2, timeout=15)
        assert job.result(timeout=20) == 1  # the old code, on the old process
    finally:
        client.close()
    (drained,) = process.events("worker.drained")
    assert drained["finished_during_drain"] == 1 and drained["put_back"] == 0, drained
    assert (project.root / "long.started").read_text().split() == [str(first["pid"])]
    assert (project.root / "long.done").read_text().split() == [str(first["pid"]), "v1"]
    # The fresh process started only once the old one had finished the job.
    (stopped,) = process.events("worker.stopped")
    assert float(str(stopped["ts"])) <= float(str(started["ts"]))
    assert float(str(started["ts"])) - float(str(stopped["ts"])) < RESTART_BOUND


def test_a_broken_edit_waits_for_the_fix(project: Project) -> None:
    process = project.start()
    project.wait_started(1)
    project.write(2, "from bananas import Bananas\napp = Bananas(\n")
    wait_for(lambda: "edit a file to restart" in process.output(), 15, message="the wait")
    assert "SyntaxError" in process.output() and process.proc.poll() is None
    time.sleep(0.3)
    project.write(3)
    project.wait_started(2, timeout=15)


def test_reload_refuses_processes_burst_and_no_app(workers: WorkerFactory) -> None:
    for flags, named in ((["-p", "2"], "--processes"), (["--burst"], "--burst")):
        done = workers.cli("worker", "--app", "apps.core:app", "--reload", *flags)
        assert done.returncode == 2, done.stderr
        assert f"--reload runs one worker that restarts on changes: drop {named}" in done.stderr
    done = workers.cli("worker", "--reload")
    assert done.returncode == 2 and "no app given" in done.stderr, done.stderr


def test_reload_without_watchfiles_names_the_extra(workers: WorkerFactory, tmp_path: Path) -> None:
    # watchfiles made unimportable for this process, as when it is not installed
    (tmp_path / "watchfiles.py").write_text("raise ImportError(\"No module named 'watchfiles'\")\n")
    env = workers.env()
    done = workers.cli(
        "worker",
        "--app",
        "apps.core:app",
        "--reload",
        PYTHONPATH=f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}",
    )
    assert done.returncode == 2, done.stderr
    assert "--reload needs the watchfiles package, in the 'reload' extra" in done.stderr
    assert "pip install 'bananas[reload]'" in done.stderr


def test_a_standby_that_imported_a_changed_file_starts_cold(tmp_path: Path) -> None:
    import json as json_module

    from bananas import app as bananas_app
    from bananas.reload_standby import _stale

    assert _stale([bananas_app.__file__, str(tmp_path / "reloadapp.py")])
    assert _stale([json_module.__file__])
    assert not _stale([str(tmp_path / "reloadapp.py")])  # the app: never imported early


def test_the_app_folder_is_watched_beside_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import TESTS

    from bananas.reload import watched_folders

    monkeypatch.chdir(tmp_path)
    # a package outside the current directory: its folder too
    assert watched_folders("apps.core:app") == [tmp_path.resolve(), (TESTS / "apps").resolve()]
    # a module inside it: the current directory covers it
    (tmp_path / "local_app_mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert watched_folders("local_app_mod:app") == [tmp_path.resolve()]
    assert watched_folders("no_such_module_here:app") == [tmp_path.resolve()]


def test_a_stop_during_a_restart_lets_the_drain_finish(project: Project, target: Backend) -> None:
    process = project.start()
    first = project.wait_started(1)
    client = _client(target)
    try:
        job = client.enqueue("slow", k="long", seconds=1.5)
        wait_for((project.root / "long.started").exists, 20, message="the job to start")
        project.write(2)
        wait_for(lambda: process.events("worker.draining"), 5, message="the drain")
        process.signal(signal.SIGINT)  # Ctrl-C while it drains for the restart
        assert process.wait(20) == 0, process.output()[-3000:]
        assert job.result(timeout=5) == 1  # finished, not forced out
    finally:
        client.close()
    assert not process.events("worker.forced_exit")
    assert [e["pid"] for e in project.started()] == [first["pid"]]  # no new worker
