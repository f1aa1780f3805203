"""Cancel from the dashboard: the job page's button (POST + CSRF, like
replay), the JSON API, and the cancelled count on the overview."""

from __future__ import annotations

import re

import httpx
from dashtools import both_brokers, csrf_from, enqueue


@both_brokers
def test_cancel_a_queued_job_from_its_page(broker_url: str, client: httpx.Client) -> None:
    [job_id] = enqueue(broker_url, [("later", {"i": 1})])
    page = client.get(f"/jobs/{job_id}").text
    form = re.search(r'<form method="post" action="(/cancel)"[^>]*>(.*?)</form>', page, re.S)
    assert form, "no cancel form on a queued job's page"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert fields["id"] == job_id and fields["next"] == f"/jobs/{job_id}"
    r = client.post(form.group(1), data=fields, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/jobs/{job_id}?cancel=cancelled"
    after = client.get(r.headers["location"]).text
    assert "Cancelled before it ran: it will never run." in after
    assert "state-cancelled" in after and 'action="/cancel"' not in after  # final: no button
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "cancelled"
    overview = client.get("/").text
    assert re.search(r'data-metric="cancelled">1<', overview), "no cancelled count"
    again = client.post("/cancel", data=fields, follow_redirects=True).text
    assert "Already finished: cancelled." in again


def test_cancel_needs_the_csrf_token(redis_url: str, client: httpx.Client) -> None:
    [job_id] = enqueue(redis_url, [("later", {"i": 1})])
    token = csrf_from(client.get(f"/jobs/{job_id}").text)
    for data in ({"id": job_id}, {"id": job_id, "csrf_token": "forged"}):
        r = client.post("/cancel", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert client.post("/api/cancel", json={"ids": [job_id]}).status_code == 403
    assert client.get("/cancel").status_code == 405
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "queued"  # nothing happened
    r = client.post("/api/cancel", json={"ids": [job_id, "nope"]}, headers={"x-csrf-token": token})
    assert r.status_code == 200
    assert r.json() == {"outcomes": {job_id: "cancelled", "nope": "unknown"}}
    bad = client.post("/api/cancel", json={"ids": []}, headers={"x-csrf-token": token})
    assert bad.status_code == 400
