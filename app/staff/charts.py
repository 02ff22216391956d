"""Horizontal bar charts for the assessment page, drawn as inline SVG by the template
(staff/_chart.html): each row's label above its bar, this period's value as the bar, the previous
period's as a thin bar under it, the target as a dashed tick across the row. Geometry only,
computed here; no JavaScript, nothing from another host (like app.staff.plot's maps). No Flask here.
"""
from __future__ import annotations

from dataclasses import dataclass

WIDTH = 320  # px: a 360 px phone with the page's margins
VALUE_W = 48  # room right of the longest bar for its value
ROW_H = 40  # label, bar, previous bar, gap
LABEL_H = 13


@dataclass(frozen=True)
class Item:
    label: str
    value: float | None
    previous: float | None = None
    met: bool | None = None  # colours the bar: target met, missed, or no target
    target: float | None = None


@dataclass(frozen=True)
class Bar:
    label: str
    y: float  # top of the row
    width: float  # px; 0 when there is no value
    previous_width: float | None  # None: no previous value
    text: str  # the value as shown ("—" when there is none)
    met: bool | None
    target_x: float | None
    target_text: str | None


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]


def _shown(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:g}{unit}"


def bar_chart(items: list[Item], *, unit: str = "", maximum: float | None = None) -> BarChart | None:
    """One row per item; the scale runs from 0 to ``maximum`` (else the largest value, previous
    value or target). None when there is nothing to draw."""
    if not items:
        return None
    top = maximum or max([x for i in items for x in (i.value, i.previous, i.target) if x is not None] + [1e-9])
    span = WIDTH - VALUE_W

    def px(value: float | None) -> float | None:
        return None if value is None else round(max(0.0, min(value, top)) / top * span, 1)

    bars = [Bar(i.label, n * ROW_H, px(i.value) or 0.0, px(i.previous), _shown(i.value, unit), i.met,
                px(i.target), None if i.target is None else _shown(i.target, unit))
            for n, i in enumerate(items)]
    return BarChart(WIDTH, ROW_H * len(items) + 4, bars)
