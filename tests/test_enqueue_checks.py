"""Mistakes a newcomer makes in the first minutes fail where they are made:
a payload that does not fit the handler at enqueue (not dead-lettered later
by a worker), a positional payload with a message that says what a payload
is, and a wait on a job type no live worker runs that says so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import timeit
from pathlib import Path

import pytest

from bananas import ArgumentsError, Bananas, PayloadError
from bananas.config import Settings
from bananas.vocabulary import WorkerInfo

pytestmark = pytest.mark.timeout(60)


async def send_email(to: str, subject: str, cc: str = "") -> dict[str, bool]:
    return {"sent": True}


def make_app(url: str) -> Bananas:
    app = Bananas(url, settings=Settings(broker_url=url))
    app.job(send_email)
    return app


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/queue.db"


def queued(app: Bananas) -> int:
    async def count() -> int:
        broker = app.new_broker()
        try:
            return await broker.count_jobs("queued")
        finally:
            await broker.close()

    return asyncio.run(count())


def test_a_missing_or_unknown_argument_is_refused_at_enqueue(sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    fn = app.job(name="other")(send_email)
    with pytest.raises(ArgumentsError, match="missing a required argument: 'subject'") as missing:
        fn.enqueue(to="a@b.c")
    assert str(missing.value).startswith("payload does not match other(to: ")
    with pytest.raises(ArgumentsError, match="unexpected keyword argument 'bcc'"):
        app.enqueue("send_email", to="a@b.c", subject="hi", bcc="x")
    with pytest.raises(ArgumentsError) as misspelt:  # every problem, not only bind()'s first
        fn.enqueue(to="a@b.c", subjet="hi")
    assert str(misspelt.value).endswith(
        "missing a required argument: 'subject'; "
        "got an unexpected keyword argument 'subjet' (did you mean 'subject'?)"
    )
    with pytest.raises(ArgumentsError, match="missing a required argument: 'to'"):
        app.enqueue_many([app.spec("send_email", subject="hi")])
    with pytest.raises(ArgumentsError):  # the dict form is checked too, and it is a TypeError
        app.enqueue("send_email", {"to": "a@b.c"}, _delay="5s")
    assert issubclass(ArgumentsError, TypeError) and issubclass(ArgumentsError, PayloadError)
    assert queued(app) == 0  # nothing was written
    fn.enqueue(to="a@b.c", subject="hi", cc="d@e.f")
    app.enqueue("not_registered_here", anything=1)  # by name only: nothing to check against
    assert queued(app) == 2


def test_a_positional_payload_says_the_payload_is_keyword_arguments(sqlite_url: str) -> None:
    app = make_app(sqlite_url)

    @app.job
    def resize(path: str, width: int) -> None: ...

    with pytest.raises(ArgumentsError) as caught:
        resize.enqueue("a.png", 10)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "the payload is keyword arguments" in message
    assert "resize.enqueue(path=..., width=...)" in message
    with pytest.raises(ArgumentsError, match="payload is keyword arguments"):
        resize.spec("a.png")  # type: ignore[arg-type]
    with pytest.raises(ArgumentsError, match="payload is keyword arguments"):
        asyncio.run(resize.enqueue_async("a.png"))  # type: ignore[arg-type]


def test_the_check_costs_well_under_a_microsecond_per_enqueue(sqlite_url: str) -> None:
    """The signature is read once, at registration; an enqueue compares two
    key sets. Measured on `Bananas.spec` (no I/O), checked vs unchecked."""
    app = make_app(sqlite_url)
    checked = app.spec
    unchecked = Bananas(sqlite_url, settings=app.settings).spec  # no handler: no check
    rounds = 20_000

    def per_call(spec: object) -> float:
        call = lambda: spec("send_email", to="a@b.c", subject="hi")  # type: ignore[operator]  # noqa: E731
        return min(timeit.repeat(call, number=rounds, repeat=5)) / rounds

    extra = per_call(checked) - per_call(unchecked)
    print(f"signature check: {extra * 1e9:.0f} ns per enqueue")
    assert extra < 2e-6  # loose: a shared 2-core machine; measured ~0.2 us


def forge_worker(app: Bananas, types: list[str]) -> None:
    """A live registry entry, as a worker's heartbeat writes it."""

    async def beat() -> None:
        broker = app.new_broker()
        try:
            await broker.heartbeat_worker(WorkerInfo(id="w-1", job_types=types))
        finally:
            await broker.close()

    asyncio.run(beat())


def test_a_wait_on_a_type_no_live_worker_runs_says_so(store_url: str) -> None:
    app = make_app(store_url)
    handle = app.enqueue("send_email", to="a@b.c", subject="hi")
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        handle.result(timeout=0.3)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"job {handle.id} did not finish within 0.3s" in message
    assert "no live worker (none heard from within 10s) runs job type 'send_email'" in message

    forge_worker(app, ["resize"])
    with pytest.raises(TimeoutError) as caught:
        asyncio.run(handle.wait(timeout=0.2))
    assert "no live worker runs job type 'send_email' (1 live worker(s) run 'resize')" in str(
        caught.value
    )

    forge_worker(app, ["resize", "send_email"])  # one runs it: just late
    with pytest.raises(TimeoutError) as caught:
        handle.result(timeout=0.2)
    assert str(caught.value) == f"job {handle.id} did not finish within 0.2s"

    with pytest.raises(TimeoutError, match="has no job nope"):
        app.handle("nope").result(timeout=0.1)


def test_enqueue_wait_on_a_type_no_live_worker_runs_says_so(sqlite_url: str) -> None:
    env = {**os.environ, "BANANAS_BROKER_URL": sqlite_url}
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bananas.cli", "enqueue", "nobody_runs", "--wait", "0.3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1, out
    assert "did not finish within 0.3s" in out.stderr
    assert "no live worker (none heard from within 10s) runs job type 'nobody_runs'" in out.stderr
