"""Server-side SVG charts: the geometry is computed here, the template draws it.
Nothing but numbers and fixed labels reach the SVG, and Jinja escapes them anyway."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..brokers.base import Throughput

WIDTH = 600
HEIGHT = 140
PAD_LEFT = 56
PAD_BOTTOM = 18
PAD_TOP = 8


@dataclass(slots=True)
class Bar:
    x: float
    width: float
    y_ok: float
    h_ok: float
    y_fail: float
    h_fail: float
    title: str


@dataclass(slots=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_bottom: float
    plot_top: int
    y_max_label: str
    bars: list[Bar]
    line: str  # SVG polyline points
    points: list[tuple[float, float, str]]  # (x, y, title) markers for the line
    x_labels: list[tuple[float, str]]
    empty: bool


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if value <= step:
            return float(step)
    magnitude = 10 ** (len(str(int(value))) - 1)
    return float((int(value / magnitude) + 1) * magnitude)


def _minute_label(minute: int) -> str:
    return time.strftime("%H:%M", time.localtime(minute * 60))


def _frame(series: list[Throughput]) -> tuple[float, float, list[tuple[float, str]]]:
    n = max(len(series), 1)
    slot = (WIDTH - PAD_LEFT) / n
    labels: list[tuple[float, str]] = []
    for i, t in enumerate(series):
        if i % 15 == 0 and i <= n - 8:
            labels.append((PAD_LEFT + i * slot + slot / 2, _minute_label(t.minute)))
    if series:
        labels.append((PAD_LEFT + (n - 1) * slot + slot / 2 - 8, "now"))
    return slot, HEIGHT - PAD_BOTTOM, labels


def throughput_chart(series: list[Throughput]) -> Chart:
    """Stacked bars per minute: completed (bottom) and failed attempts (top)."""
    slot, bottom, labels = _frame(series)
    top = _nice_max(max((t.completed + t.failed for t in series), default=0))
    scale = (bottom - PAD_TOP) / top
    bars = []
    for i, t in enumerate(series):
        x = PAD_LEFT + i * slot + slot * 0.1
        h_ok = t.completed * scale
        h_fail = t.failed * scale
        bars.append(
            Bar(
                x=round(x, 2),
                width=round(slot * 0.8, 2),
                y_ok=round(bottom - h_ok, 2),
                h_ok=round(h_ok, 2),
                y_fail=round(bottom - h_ok - h_fail, 2),
                h_fail=round(h_fail, 2),
                title=f"{_minute_label(t.minute)}: {t.completed} completed, {t.failed} failed",
            )
        )
    return Chart(
        WIDTH,
        HEIGHT,
        PAD_LEFT,
        bottom,
        PAD_TOP,
        f"{top:g}/min",
        bars,
        "",
        [],
        labels,
        empty=not any(t.completed or t.failed for t in series),
    )


def failure_rate_chart(series: list[Throughput]) -> Chart:
    """Failed attempts / all finished attempts per minute, as a line (0-100 %)."""
    slot, bottom, labels = _frame(series)
    scale = bottom - PAD_TOP
    coords = []
    points = []
    for i, t in enumerate(series):
        done = t.completed + t.failed
        if not done:
            continue
        rate = t.failed / done
        x = round(PAD_LEFT + i * slot + slot / 2, 2)
        y = round(bottom - rate * scale, 2)
        coords.append(f"{x},{y}")
        points.append((x, y, f"{_minute_label(t.minute)}: {rate:.0%} of {done} failed"))
    return Chart(
        WIDTH,
        HEIGHT,
        PAD_LEFT,
        bottom,
        PAD_TOP,
        "100%",
        [],
        " ".join(coords),
        points,
        labels,
        empty=not points,
    )
