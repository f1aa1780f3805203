"""A user's module, type-checked by tests/test_typed_enqueue.py (mypy --strict
in a subprocess). Each line mypy must flag ends with an "error:" comment giving
a fragment of the message; every other line must pass."""

from __future__ import annotations

from datetime import timedelta

from bananas import Bananas, JobHandle, JobSpec

app = Bananas()


@app.job(priority="normal", timeout="2m", max_retries=3)
async def send_email(to: str, subject: str, cc: str = "") -> dict[str, bool]:
    return {"sent": True}


@app.job
def generate_report(report_id: int) -> str:
    return f"report {report_id}"


def correct() -> list[JobHandle]:
    return [
        send_email.options().enqueue(to="a@b.c", subject="hi"),
        send_email.options(delay="10s", priority="high").enqueue(to="a", subject="hi", cc=""),
        send_email.options(delay=timedelta(minutes=5), job_id="x").enqueue("a@b.c", "hi"),
        generate_report.options(max_retries=0, description="monthly").enqueue(report_id=7),
        send_email.enqueue(to="a@b.c", subject="hi", _delay="10s"),  # the untyped form still works
    ]


async def correct_async() -> JobSpec:
    await send_email.options().enqueue_async(to="a@b.c", subject="hi")
    return generate_report.options().spec(report_id=1)


def misspelt() -> None:
    send_email.options().enqueue(to="a", subjet="hi")  # error: Unexpected keyword argument "subjet"


def wrong_type() -> None:
    generate_report.options().enqueue(report_id="7")  # error: type "str"; expected "int"


def missing() -> None:
    send_email.options().enqueue(to="a@b.c")  # error: Missing positional argument "subject"


def misspelt_option() -> None:
    send_email.options(dealy="1s").enqueue(to="a", subject="b")  # error: keyword argument "dealy"


def positional_untyped() -> None:
    send_email.enqueue("a@b.c", "hi")  # error: expected "Never"
