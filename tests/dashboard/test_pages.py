"""Every page over real HTTP (uvicorn + redis-server), with state set up through
the Broker protocol."""

from __future__ import annotations

import json
import re
import time

import httpx
from dashtools import both_brokers, enqueue, finish, lease, run, serve_app, with_broker
from support import wait_for

from bananas.brokers import from_url
from bananas.brokers.base import DeadInfo
from bananas.vocabulary import WorkerInfo


def _cell(html: str, job_type: str, priority: str) -> str:
    row = re.search(rf'<tr data-job-type="{re.escape(job_type)}">(.*?)</tr>', html, re.S)
    assert row, f"no depth row for {job_type}"
    cell = re.search(rf'data-priority="{priority}">([^<]*)<', row.group(1))
    assert cell
    return cell.group(1)


@both_brokers
def test_overview_shows_depth_per_priority_and_type(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("send_email", {"to": f"u{i}"}) for i in range(7)])
    enqueue(broker_url, [("resize", {"n": i}) for i in range(3)], _priority="high")
    enqueue(broker_url, [("resize", {"n": 9})], _priority="low")
    enqueue(broker_url, [("later", {})], _delay="1h")

    async def dead_one(b):  # one dead letter, one in flight
        got = await lease(b, [("normal", "send_email")], 2)
        await finish(b, got[:1], fail=True)

    run(with_broker(broker_url, dead_one))
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert _cell(html, "send_email", "normal") == "5"
    assert _cell(html, "resize", "high") == "3"
    assert _cell(html, "resize", "low") == "1"
    assert re.search(r'data-metric="queued">9<', html)
    assert re.search(r'data-metric="running">1<', html)
    assert re.search(r'data-metric="scheduled">1<', html)
    assert re.search(r'data-metric="dead">1<', html)
    assert "Throughput, last hour" in html and "<svg" in html
    assert 'class="fail"' in html  # the failed attempt is a red bar this minute
    age = re.search(r'data-oldest="normal">([^<]+)<', html)
    assert age and age.group(1) != "—"


@both_brokers
def test_overview_api_matches(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("a", {}), ("a", {}), ("b", {})])
    data = client.get("/api/overview").json()
    assert data["queued"] == 3
    assert {(r["job_type"], r["total"]) for r in data["rows"]} == {("a", 2), ("b", 1)}
    assert len(data["throughput"]) == 60
    assert data["failure_rate"] == 0.0


@both_brokers
def test_workers_page_separates_schedulers(broker_url: str, client: httpx.Client) -> None:
    now = time.time()

    async def register(b):
        await b.heartbeat_worker(
            WorkerInfo.from_dict(
                {
                    "id": "w-1",
                    "kind": "worker",
                    "host": "box-a",
                    "pid": 4242,
                    "mode": "job-specialized",
                    "group": "images",
                    "priorities": ["high", "normal"],
                    "job_types": ["resize"],
                    "concurrency": 8,
                    "in_flight": 6,
                    "prefetched": 3,
                    "utilization": 0.75,
                    "started_at": now - 120,
                    "draining": True,
                    "state": "draining",
                }
            ),
        )
        await b.heartbeat_worker(
            WorkerInfo.from_dict(
                {
                    "id": "s-1",
                    "kind": "scheduler",
                    "host": "box-b",
                    "pid": 7,
                    "mode": "scheduler-only",
                    "group": "ops",
                    "started_at": now - 5,
                    "draining": False,
                    "state": "running",
                }
            ),
        )

    run(with_broker(broker_url, register))
    html = client.get("/workers").text
    worker = re.search(r'<tr data-worker-id="w-1" class="draining">(.*?)</tr>', html, re.S)
    assert worker, html
    cells = worker.group(1)
    assert '<td class="num" data-prefetched>3</td>' in cells
    for text in (
        "images",
        "job-specialized",
        "box-a",
        "4242",
        "high, normal",
        "resize",
        "75%",
        "draining",
    ):
        assert text in cells
    assert 'data-scheduler-id="s-1"' in html
    assert 'data-worker-id="s-1"' not in html
    data = client.get("/api/workers").json()
    assert [w["id"] for w in data["workers"]] == ["w-1"]
    assert [s["id"] for s in data["schedulers"]] == ["s-1"]
    assert data["pools"][0] == {
        "group": "images",
        "mode": "job-specialized",
        "workers": 1,
        "concurrency": 8,
        "in_flight": 6,
        "utilization": 0.75,
        "prefetched": 3,
    }
    assert data["workers"][0]["heartbeat_age"] < 10


@both_brokers
def test_jobs_by_state_with_type_filter_and_paging(broker_url: str, client: httpx.Client) -> None:
    ids = enqueue(broker_url, [("alpha", {"i": i}) for i in range(60)])
    enqueue(broker_url, [("beta", {"i": i}) for i in range(5)])
    page1 = client.get("/jobs", params={"state": "queued", "type": "alpha", "limit": 25}).text
    shown = re.findall(r'<tr data-job-id="([^"]+)">', page1)
    assert shown == ids[:25]  # next to run first
    assert "1\u201325 of 60" in page1
    page3 = client.get(
        "/jobs", params={"state": "queued", "type": "alpha", "limit": 25, "offset": 50}
    )
    assert re.findall(r'<tr data-job-id="([^"]+)">', page3.text) == ids[50:]
    assert "51\u201360 of 60" in page3.text
    beta = client.get("/api/jobs", params={"state": "queued", "type": "beta"}).json()
    assert beta["total"] == 5 and {r["name"] for r in beta["rows"]} == {"beta"}


@both_brokers
def test_running_scheduled_completed_dead_listings(broker_url: str, client: httpx.Client) -> None:
    ids = enqueue(broker_url, [("job", {"i": i}) for i in range(6)])
    later = enqueue(broker_url, [("job", {"i": 99})], _delay="10m")

    async def work(b):
        got = await lease(b, [("normal", "job")], 4, lease_seconds=120)
        await finish(b, got[:2], fail=False)
        await finish(b, got[2:3], fail=True)
        return got

    got = run(with_broker(broker_url, work))
    running = client.get("/jobs", params={"state": "running"}).text
    assert re.findall(r'<tr data-job-id="([^"]+)">', running) == [got[3].id]
    assert "Lease deadline" in running and "in 1m" in running  # about two minutes out
    scheduled = client.get("/jobs", params={"state": "scheduled"}).text
    assert re.findall(r'<tr data-job-id="([^"]+)">', scheduled) == later
    assert "Due" in scheduled and "in 9m" in scheduled
    completed = client.get("/jobs", params={"state": "completed"}).text
    assert set(re.findall(r'<tr data-job-id="([^"]+)">', completed)) == {got[0].id, got[1].id}
    dead = client.get("/jobs", params={"state": "dead"}).text
    assert re.findall(r'<tr data-job-id="([^"]+)">', dead) == [got[2].id]
    queued = client.get("/jobs").text
    assert re.findall(r'<tr data-job-id="([^"]+)">', queued) == ids[4:]


@both_brokers
def test_filtered_completed_pages_without_a_total(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("x", {"i": i}) for i in range(30)] + [("y", {"i": i}) for i in range(30)])

    async def work(b):
        got = await lease(b, [("normal", "x"), ("normal", "y")], 60)
        await finish(b, got, fail=False)

    run(with_broker(broker_url, work))
    first = client.get("/api/jobs", params={"state": "completed", "type": "x", "limit": 25}).json()
    assert first["total"] is None and first["has_more"] is True
    assert len(first["rows"]) == 25 and {r["name"] for r in first["rows"]} == {"x"}
    second = client.get(
        "/api/jobs", params={"state": "completed", "type": "x", "limit": 25, "offset": 25}
    ).json()
    assert len(second["rows"]) == 5 and second["has_more"] is False
    assert not {r["id"] for r in first["rows"]} & {r["id"] for r in second["rows"]}
    html = client.get("/jobs", params={"state": "completed", "type": "x", "limit": 25}).text
    assert "from 1" in html and 'rel="next"' in html


@both_brokers
def test_search_by_id_opens_the_job(broker_url: str, client: httpx.Client) -> None:
    [job_id] = enqueue(broker_url, [("find_me", {"k": 1})])
    r = client.get("/jobs", params={"q": job_id}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith(f"/jobs/{job_id}")
    missing = client.get("/jobs", params={"q": "no-such-id"})
    assert missing.status_code == 200 and "No job with id" in missing.text


@both_brokers
def test_job_page_shows_record_payload_error_traceback_result_timeline(
    broker_url: str, client: httpx.Client
) -> None:
    [done_id, dead_id] = enqueue(
        broker_url, [("calc", {"numbers": [1, 2, 3], "nested": {"k": "v"}}), ("calc", {"n": 0})]
    )

    async def work(b):
        got = await lease(b, [("normal", "calc")], 2)
        await b.complete(got[0], got[0].raw, b'{"sum": 6}', 12.5)
        await b.bury(
            got[1],
            got[1].raw,
            DeadInfo(
                reason="failed",
                error="ZeroDivisionError: division by zero",
                traceback='Traceback (most recent call last):\n  File "calc.py", line 3\n'
                "ZeroDivisionError: division by zero",
                source="worker",
            ),
            3.0,
        )

    run(with_broker(broker_url, work))
    done = client.get(f"/jobs/{done_id}").text
    assert "state-completed" in done
    assert "&#34;numbers&#34;: [\n    1," in done  # pretty-printed, escaped
    assert re.search(r'<pre class="code" id="result">\{\n  &#34;sum&#34;: 6\n\}</pre>', done)
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', done, re.S)
    assert timeline
    labels = re.findall(r'<span class="what">([^<]+)</span>', timeline.group(1))
    assert labels[0] == "created" and "completed" in labels
    dead = client.get(f"/jobs/{dead_id}").text
    assert "state-dead" in dead and 'id="replay"' in dead
    assert "ZeroDivisionError: division by zero" in dead
    assert "File &#34;calc.py&#34;, line 3" in dead
    assert "dead-lettered" in dead
    api = client.get(f"/api/jobs/{dead_id}").json()
    assert api["state"] == "dead" and api["record"]["payload"] == {"n": 0}
    assert api["dead"]["reason"] == "failed"
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope").status_code == 404


def test_job_page_with_a_malformed_record(redis_url: str, client: httpx.Client, r) -> None:
    r.set("bananas:job:broken", "{not json <b>")
    r.lpush("bananas:queue:normal", "broken")
    html = client.get("/jobs/broken").text
    assert "not a JSON object" in html and "{not json &lt;b&gt;" in html


@both_brokers
def test_job_ids_with_slashes_and_odd_characters(broker_url: str, client: httpx.Client) -> None:
    app_ids = enqueue(broker_url, [("odd", {})], _job_id="tenant/42?x=1#frag")
    assert app_ids == ["tenant/42?x=1#frag"]
    listing = client.get("/jobs").text
    href = re.search(r'<a href="([^"]+)">tenant/42\?x=1#frag</a>', listing)
    assert href and href.group(1) == "/jobs/tenant%2F42%3Fx%3D1%23frag"
    page = client.get(href.group(1))
    assert page.status_code == 200 and "state-queued" in page.text


@both_brokers
def test_dead_letter_page_lists_newest_first_with_paging(
    broker_url: str, client: httpx.Client
) -> None:
    enqueue(broker_url, [("d", {"i": i}) for i in range(30)])

    async def work(b):
        got = await lease(b, [("normal", "d")], 30)
        for d in got:  # one at a time, so the death order is the enqueue order
            await finish(b, [d], fail=True)
        return [d.id for d in got]

    died = run(with_broker(broker_url, work))
    html = client.get("/dead", params={"limit": 25}).text
    first = re.findall(r'<tr data-job-id="([^"]+)">', html)
    assert len(first) == 25
    assert "1\u201325 of 30" in html and "Replay all 30" in html
    rest = client.get("/api/dead", params={"limit": 25, "offset": 25}).json()
    assert rest["total"] == 30
    assert sorted(first + [row["id"] for row in rest["rows"]]) == sorted(died)
    whole = client.get("/api/dead", params={"limit": 50}).json()["rows"]
    times = [row["died_at_ms"] for row in whole]
    assert times == sorted(times, reverse=True)  # newest first
    died_at = {row["id"]: row["died_at_ms"] for row in whole}
    assert died_at[died[-1]] == times[0] and died_at[died[0]] == times[-1]


def test_bad_query_parameters_are_a_clear_400(client: httpx.Client) -> None:
    r = client.get("/jobs", params={"state": "lost"})
    assert r.status_code == 400 and "unknown state" in r.text
    r = client.get("/api/jobs", params={"limit": "7"})
    assert r.status_code == 400 and "limit" in r.json()["error"]
    assert client.get("/api/dead", params={"offset": "-1"}).status_code == 400


@both_brokers
def test_schedules_page(broker_url: str) -> None:
    from bananas.schedules import Schedule

    every = Schedule("cleanup", every=300.0, payload={"older_than": "<7d>"})
    with serve_app(broker_url, schedules={"cleanup": every}) as s:
        html = httpx.get(f"{s.url}/schedules").text
    assert 'data-schedule="cleanup"' in html and "every 300s" in html
    assert "&lt;7d&gt;" in html
    upcoming = re.search(r'<span class="hint">([^<]+)</span></td>', html)
    assert upcoming and re.search(r"[05]:00\.000Z$", upcoming.group(1)), html


def test_broker_down_is_a_clear_503(redis_url: str) -> None:
    with serve_app("redis://127.0.0.1:1/0") as s:
        r = httpx.get(f"{s.url}/", headers={"accept": "text/html"}, timeout=30)
        assert r.status_code == 503 and "Redis unreachable" in r.text
        api = httpx.get(f"{s.url}/api/overview", timeout=30)
        assert api.status_code == 503 and "unreachable" in json.loads(api.text)["error"]


@both_brokers
def test_jobs_waiting_to_retry_are_marked(broker_url: str, client: httpx.Client) -> None:
    [job_id] = enqueue(broker_url, [("flaky", {"k": 1})])

    async def fail_once(b):
        [d] = await lease(b, [("normal", "flaky")], 1)
        record = json.loads(d.raw)
        record.update(status="failed", attempts=1, error="RuntimeError: try again")
        assert await b.retry(d, json.dumps(record).encode(), 600.0)

    run(with_broker(broker_url, fail_once))
    html = client.get("/jobs", params={"state": "scheduled"}).text
    row = re.search(rf'<tr data-job-id="{job_id}">(.*?)</tr>', html, re.S)
    assert row and "retry</span>" in row.group(1) and "in 9m" in row.group(1)
    page = client.get(f"/jobs/{job_id}").text
    assert "RuntimeError: try again" in page and "state-scheduled" in page


def test_completed_jobs_whose_record_expired(redis_url: str, client: httpx.Client) -> None:
    [job_id] = enqueue(redis_url, [("short_lived", {})])

    async def complete(b):
        [d] = await lease(b, [("normal", "short_lived")], 1)
        await b.complete(d, d.raw, b"1", 1.0)

    async def record(b):
        return await b.get_record(job_id)

    async def with_short_ttl() -> None:
        b = from_url(redis_url, result_ttl=1)
        try:
            await complete(b)
        finally:
            await b.close()

    run(with_short_ttl())
    wait_for(lambda: run(with_broker(redis_url, record)) is None, 10, 0.1, "the record to expire")
    row = re.search(
        rf'<tr data-job-id="{job_id}">(.*?)</tr>', client.get("/jobs?state=completed").text, re.S
    )
    assert row and "record expired" in row.group(1)
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 404 and "expired" in page.text
