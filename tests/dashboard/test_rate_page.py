"""The overview shows rate-limited work as throttled, with its limit and
use (docs/control.md, "Rate limits"), not as scheduled work; state set up
through the Broker protocol on both brokers."""

from __future__ import annotations

import re

import httpx
import orjson
from dashtools import both_brokers, enqueue, lease, run, with_broker

from bananas.rates import RESERVED, bucket_id


@both_brokers
def test_throttled_jobs_show_apart_with_their_limit(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("ping", {"n": i}) for i in range(3)])
    enqueue(broker_url, [("later", {})], _delay="1h")

    async def throttle(b):  # two parked for their slot, as a worker's admission does
        await b.declare_rate_limits({"ping": "5/s", "later": None})
        await b.rate_admit(bucket_id("ping", None), 0.2, 50)  # 10 s of slots booked
        for delivery in await lease(b, [("normal", "ping")], 2):
            record = orjson.loads(delivery.raw)
            record[RESERVED] = 0
            assert await b.rate_park(delivery, orjson.dumps(record), 60.0, "ping")

    run(with_broker(broker_url, throttle))
    html = client.get("/").text
    assert re.search(r'data-metric="throttled">2<', html)
    assert re.search(r'data-metric="scheduled">1<', html)  # the delayed job only
    row = re.search(r'<tr data-rate-limit="ping">(.*?)</tr>', html, re.S)
    assert row, "no rate-limit row"
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    assert cells[:3] == ["ping", "5/s", "2"]
    assert cells[3].endswith("s (at its limit)") and 9 < float(cells[3].split()[0]) <= 10
    listing = client.get("/jobs", params={"state": "scheduled"}).text
    assert listing.count(">throttled</span>") == 2  # the delayed job has no badge
    data = client.get("/api/overview").json()
    assert (data["throttled"], data["scheduled"]) == (2, 1)
    assert [(r["name"], r["limit"], r["throttled"]) for r in data["rate_limits"]] == [
        ("ping", "5/s", 2)
    ]


def test_no_rate_limits_no_card(client: httpx.Client) -> None:
    html = client.get("/").text
    assert 'data-metric="throttled"' not in html and "Rate limits" not in html
