"""Rate limits without a broker: an app without a limit builds no admission
(nothing on its hot path), and RetryLater in the test mode (docs/testing.md)
schedules the job again with its attempts unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bananas import Bananas, BananasError, RetryLater
from bananas.brokers.sqlite import SQLiteBroker
from bananas.config import Settings
from bananas.logs import EventLog
from bananas.testing_plugin import StartTestMode
from bananas.worker.rates import admission_for
from bananas.worker.runtime import Worker

pytestmark = pytest.mark.timeout(60)

app = Bananas()
CALLS: list[int] = []


@app.job(max_retries=0)
def snoozes_once(n: int) -> int:
    CALLS.append(n)
    if len(CALLS) == 1:
        raise RetryLater("2s")
    return n


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BANANAS_BROKER_URL", "redis://127.0.0.1:9/0")  # refused
    monkeypatch.delenv("REDIS_URL", raising=False)
    app.configure(Settings())
    CALLS.clear()
    yield
    app.close()


def test_an_app_without_a_rate_limit_builds_no_admission(tmp_path: object) -> None:
    plain, limited = Bananas(), Bananas()
    plain.job(lambda: None, name="a")
    limited.job(lambda: None, name="a")
    limited.job(lambda: None, name="b", rate_limit="5/m")
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/q.db")
    stop = asyncio.Event()
    log = EventLog("error")
    assert admission_for(broker, plain.handlers, log, stop) is None
    admission = admission_for(broker, limited.handlers, log, stop)
    assert admission is not None and set(admission.limits) == {"b"}
    assert admission.limits["b"].interval == 12.0
    settings = Settings(broker_url=f"sqlite:///{tmp_path}/q.db")
    worker = Worker(plain, settings, log, broker)
    assert worker.admission is None and worker.fetcher.p.admit is None  # the hook is off


def test_retry_later_in_the_test_mode(bananas_test_mode: StartTestMode) -> None:
    jobs = bananas_test_mode(app)
    handle = snoozes_once.enqueue(n=7)
    jobs.drain()
    [job] = jobs.jobs("snoozes_once")
    assert (job.state, job.attempts) == ("scheduled", 0)  # no attempt charged
    assert 1.9 < job.due_in <= 2.0
    jobs.drain(advance=True)
    assert handle.result() == 7 and CALLS == [7, 7]


def test_retry_later_says_what_a_delay_may_be() -> None:
    assert RetryLater("500ms").delay == 0.5 and RetryLater(3).delay == 3.0
    for bad in ("soon", -1, 0, "8d"):
        with pytest.raises(BananasError, match=r"RetryLater\(delay="):
            RetryLater(bad)
