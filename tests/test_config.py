"""Settings validation: every bad value is one clear error naming the variable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bananas.config import Settings
from bananas.durations import parse_duration
from bananas.errors import ConfigError
from bananas.vocabulary import Mode


def load(**env: str) -> Settings:
    return Settings.load(env=env)


def test_defaults() -> None:
    s = load()
    assert (s.mode, s.concurrency, s.priorities) == ("default", 10, ("high", "normal", "low"))
    assert (s.job_timeout, s.max_retries, s.shutdown_timeout) == (300, 3, 30)
    assert s.broker_url is None and s.effective_broker_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"WORKER_MODE": "fast"}, "WORKER_MODE='fast'"),
        ({"WORKER_CONCURRENCY": "0"}, "between 1 and 1000"),
        ({"WORKER_CONCURRENCY": "1001"}, "between 1 and 1000"),
        ({"WORKER_CONCURRENCY": "ten"}, "WORKER_CONCURRENCY='ten'"),
        ({"WORKER_PRIORITIES": "high,urgent"}, "unknown priority 'urgent'"),
        ({"WORKER_PRIORITIES": ","}, "empty"),
        ({"SCHEDULER_INTERVAL": "50ms"}, "between 100ms and 1m"),
        ({"SCHEDULER_INTERVAL": "2m"}, "between 100ms and 1m"),
        ({"JOB_TIMEOUT": "soon"}, "JOB_TIMEOUT='soon'"),
        (
            {"ENABLE_SCHEDULER": "maybe"},
            "ENABLE_SCHEDULER='maybe' is invalid: not a boolean "
            "(allowed: true, 1, yes, on (true) or false, 0, no, off (false))",
        ),
        ({"REDIS_URL": "http://x"}, "allowed: redis://"),
        ({"WORKER_CONCURRENCY": "5", "CONCURRENCY": "6"}, "disagree"),
        ({"MAX_RETRIES": "-1"}, "MAX_RETRIES"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_invalid_values(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_aliases_and_overrides() -> None:
    s = load(CONCURRENCY="7", WORKER_TYPE="resize", GROUP_ID="images")
    assert (s.concurrency, s.job_types, s.mode, s.group_id) == (
        7,
        ("resize",),
        "job-specialized",
        "images",
    )
    assert not s.enable_scheduler  # off by default for job-specialized
    s = Settings.load(env={"WORKER_CONCURRENCY": "3"}, overrides={"WORKER_CONCURRENCY": "9"})
    assert s.concurrency == 9
    assert load(BANANAS_BROKER_URL="sqlite:///x.db", REDIS_URL="redis://h").broker_url == (
        "sqlite:///x.db"
    )


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_roundtrip(value: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{value}{unit}") == pytest.approx(value * factor)


@given(st.text(max_size=12))
def test_duration_never_crashes(text: str) -> None:
    try:
        assert parse_duration(text) >= 0
    except ValueError as exc:
        assert "duration" in str(exc)


@pytest.mark.parametrize("mode", list(Mode))
def test_mode_is_a_mode_however_settings_are_made(mode: Mode) -> None:
    extra = {"WORKER_PRIORITIES": "high", "WORKER_JOB_TYPES": "add"}
    loaded = load(WORKER_MODE=mode.value.upper(), **extra)
    made = Settings(mode=mode.value)  # type: ignore[arg-type]  # a str, as code may pass
    assert loaded.mode is mode and made.mode is mode
    assert loaded.mode == mode.value  # a StrEnum: still equal to its text
    assert loaded.enable_scheduler is mode.scheduler_by_default


def test_worker_type_alias_implies_job_specialized() -> None:
    assert load(WORKER_TYPE="add").mode is Mode.JOB_SPECIALIZED


@pytest.mark.parametrize("text", ["true", "1", "yes", "on", "TRUE", " On "])
def test_every_true_spelling_the_error_names_is_accepted(text: str) -> None:
    # specialized: the scheduler is off unless the variable turns it on
    assert load(
        WORKER_MODE="specialized", WORKER_PRIORITIES="high", ENABLE_SCHEDULER=text
    ).enable_scheduler


@pytest.mark.parametrize("text", ["false", "0", "no", "off", "OFF"])
def test_every_false_spelling_the_error_names_is_accepted(text: str) -> None:
    assert not load(ENABLE_SCHEDULER=text).enable_scheduler
