"""examples/django_app on the embedded SQLite broker, with SQLite as Django's
database: `manage.py runserver` and `bananas worker` beside it, each started
as a user would, finding the same queue file through an absolute URL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from exampletools import EXAMPLES, Process, WebServer, example_env, poll, start_worker
from support import BrokerView, wait_for

from bananas.vocabulary import JOB_STATES

EXAMPLE = EXAMPLES / "django_app"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("django_app")
    env = example_env(
        DJANGO_DB_PATH=str(data / "db.sqlite3"),
        BANANAS_BROKER_URL=f"sqlite:///{data / 'queue.db'}",
    )
    for command in (["migrate", "--noinput"], ["loaddata", "demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("django_logs")


@pytest.fixture(scope="module")
def worker(env: dict[str, str], logs: Path) -> Iterator[Process]:
    process = start_worker(EXAMPLE, "shop.worker:app", env, logs)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def web(env: dict[str, str], logs: Path) -> Iterator[WebServer]:
    server = WebServer(
        [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"],
        EXAMPLE,
        env,
        logs,
    ).wait_ready("/orders/0/", status=404)
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture(scope="module")
def queue(env: dict[str, str]) -> Iterator[BrokerView]:
    view = BrokerView(env["BANANAS_BROKER_URL"])
    yield view
    view.close()


def receipt_jobs(queue: BrokerView) -> int:
    """send_receipt jobs in the broker, whatever their state. Counted state by
    state, a job moving between two reads (running, then completed) can be
    seen twice or not at all: read until two reads in a row agree."""
    last = -1
    deadline = time.monotonic() + 10
    while True:
        now = sum(queue.count(state, "send_receipt") for state in JOB_STATES)
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.05)


def order(web: WebServer, quantity: int) -> httpx.Response:
    return httpx.post(
        f"{web.base_url}/orders/",
        json={"product": "banana", "quantity": quantity, "email": "ada@example.com"},
        timeout=10,
    )


def test_an_order_gets_its_receipt_from_the_worker(web: WebServer, worker: Process) -> None:
    response = order(web, 3)
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]

    detail = poll(
        lambda: httpx.get(f"{web.base_url}/orders/{order_id}/", timeout=5),
        lambda r: r.status_code == 200 and r.json()["receipt_sent"],
        timeout=15,
        message=f"the receipt of order {order_id}",
    )
    assert detail.json() == {
        "id": order_id,
        "product": "banana",
        "quantity": 3,
        "receipt_sent": True,
    }
    # The worker sent it through Django's mail (the console backend prints it).
    assert f"Subject: Your order #{order_id}" in worker.output()


def test_a_rolled_back_order_enqueues_no_receipt(
    web: WebServer, worker: Process, queue: BrokerView
) -> None:
    before = receipt_jobs(queue)
    response = order(web, 10_000)  # more than the stock: the transaction rolls back
    assert response.status_code == 409, response.text
    # The enqueue is synchronous inside the request: had it run before the
    # commit, the job would be in the broker now, in some state.
    assert receipt_jobs(queue) == before

    # And the worker is still there for the next committed order.
    assert order(web, 1).status_code == 201
    wait_for(lambda: receipt_jobs(queue) == before + 1, 10, message="one more receipt job")
