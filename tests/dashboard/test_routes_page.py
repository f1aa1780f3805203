"""The overview's queue table per route: a job on a route no worker serves
shows in its own row (route column), apart from the same type on default."""

from __future__ import annotations

import re

import httpx
from dashtools import both_brokers, enqueue


@both_brokers
def test_overview_shows_each_route_in_its_own_row(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("render", {"n": i}) for i in range(4)], _route="gpu")
    enqueue(broker_url, [("render", {"n": 9})])
    html = client.get("/").text
    gpu = re.search(r'<tr data-job-type="render" data-route="gpu">(.*?)</tr>', html, re.S)
    default = re.search(r'<tr data-job-type="render">(.*?)</tr>', html, re.S)
    assert gpu and default
    assert '<td class="route">gpu</td>' in gpu.group(1)
    assert re.search(r'data-priority="normal">4<', gpu.group(1))
    assert re.search(r'data-priority="normal">1<', default.group(1))
    rows = client.get("/api/overview").json()["rows"]
    assert {(r["route"], r["job_type"], r["total"]) for r in rows} == {
        ("gpu", "render", 4),
        ("default", "render", 1),
    }


@both_brokers
def test_overview_has_no_route_column_without_routes(broker_url: str, client: httpx.Client) -> None:
    enqueue(broker_url, [("render", {"n": 1})])
    html = client.get("/").text
    assert "<th>Route</th>" not in html and 'class="route"' not in html
