"""Dead-letter replay and delete from the pages and the API: single, selected, all."""

from __future__ import annotations

import re

import httpx
import redis
from dashtools import both_brokers, csrf_from, enqueue, finish, lease, run, with_broker


def _bury(url: str, n: int, name: str = "doomed") -> list[str]:
    ids = enqueue(url, [(name, {"i": i}) for i in range(n)])

    async def work(b):
        await finish(b, await lease(b, [("normal", name)], n), fail=True)

    run(with_broker(url, work))
    return ids


def _states(client: httpx.Client, ids: list[str]) -> list[str | None]:
    out = []
    for job_id in ids:
        r = client.get(f"/api/jobs/{job_id}")
        out.append(r.json()["state"] if r.status_code == 200 else None)
    return out


@both_brokers
def test_replay_one_from_its_job_page(broker_url: str, client: httpx.Client) -> None:
    [job_id] = _bury(broker_url, 1)
    page = client.get(f"/jobs/{job_id}").text
    form = re.search(r'<form method="post" action="(/dead/replay)">(.*?)</form>', page, re.S)
    assert form, "no replay form on a dead job's page"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert fields["ids"] == job_id and fields["next"] == f"/jobs/{job_id}"
    r = client.post(form.group(1), data=fields, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/jobs/{job_id}?done=replay&n=1&missed=0&bad=0"
    after = client.get(r.headers["location"]).text
    assert "Replayed 1 job." in after and "state-queued" in after
    record = client.get(f"/api/jobs/{job_id}").json()["record"]
    assert record["attempts"] == 0 and record["status"] == "pending"


@both_brokers
def test_replay_and_delete_selected(broker_url: str, client: httpx.Client) -> None:
    ids = _bury(broker_url, 5)
    token = csrf_from(client.get("/dead").text)
    r = client.post(
        "/dead/replay",
        data={"csrf_token": token, "ids": ids[:2], "next": "/dead"},
    )
    assert r.status_code == 200 and "Replayed 2 jobs." in r.text
    r = client.post(
        "/dead/delete", data={"csrf_token": token, "ids": [ids[2], "gone-already"], "next": "/dead"}
    )
    assert "Deleted 1 job." in r.text and "1 no longer in the dead-letter queue" in r.text
    assert _states(client, ids) == ["queued", "queued", None, "dead", "dead"]


@both_brokers
def test_replay_all_and_delete_all(broker_url: str, client: httpx.Client) -> None:
    ids = _bury(broker_url, 12)
    token = csrf_from(client.get("/dead").text)
    r = client.post("/dead/replay", data={"csrf_token": token, "all": "1", "next": "/dead"})
    assert "Replayed 12 jobs." in r.text and "The dead-letter queue is empty." in r.text
    assert set(_states(client, ids)) == {"queued"}
    more = _bury(broker_url, 12, name="again")
    r = client.post("/dead/delete", data={"csrf_token": token, "all": "1"})
    assert "Deleted 12 jobs." in r.text
    assert set(_states(client, more)) == {None}


@both_brokers
def test_api_actions(broker_url: str, client: httpx.Client) -> None:
    ids = _bury(broker_url, 4)
    headers = {"x-csrf-token": csrf_from(client.get("/dead").text)}
    r = client.post("/api/dead/replay", json={"ids": ids[:1]}, headers=headers)
    assert r.json() == {"action": "replay", "done": 1, "missing": [], "invalid": {}}
    # An id that is no dead letter at all is missing, not "cannot be replayed".
    r = client.post("/api/dead/replay", json={"ids": ["no-such-id"]}, headers=headers)
    assert r.json() == {"action": "replay", "done": 0, "missing": ["no-such-id"], "invalid": {}}
    r = client.post("/api/dead/delete", json={"all": True}, headers=headers)
    assert r.json()["done"] == 3
    for body in ({"ids": "x"}, {"ids": [1]}, {"ids": ["a"], "all": True}, {}, [1]):
        bad = client.post("/api/dead/replay", json=body, headers=headers)
        assert bad.status_code == 400, body
    assert client.post("/api/dead/explode", json={"ids": ["a"]}, headers=headers).status_code == 404


def test_a_record_that_cannot_be_replayed_is_reported(redis_url: str, client: httpx.Client) -> None:
    [job_id] = _bury(redis_url, 1)
    r = redis.Redis.from_url(redis_url)
    r.set(f"bananas:job:{job_id}", b"[not an object]")
    r.close()
    headers = {"x-csrf-token": csrf_from(client.get("/dead").text)}
    result = client.post("/api/dead/replay", json={"ids": [job_id]}, headers=headers).json()
    assert result["done"] == 0 and job_id in result["invalid"]
    token = headers["x-csrf-token"]
    page = client.post("/dead/replay", data={"csrf_token": token, "ids": job_id})
    assert "1 could not be replayed" in page.text
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "dead"
