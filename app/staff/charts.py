"""Horizontal bar charts for the assessment page, drawn as inline SVG by the template
(staff/_chart.html): this period's value as a bar, the previous period's as a thin bar under it,
the target as a dashed line. Geometry only, computed here; no JavaScript, nothing from another
host (like app.staff.plot's maps). No Flask here.
"""
from __future__ import annotations

from dataclasses import dataclass

WIDTH = 320  # px: a 360 px phone with the page's margins
LABEL_W = 112  # the left column with each bar's label
VALUE_W = 44  # the right column with the value
ROW_H = 30
TOP = 8


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    width: float  # px; 0 when there is no value
    previous_width: float | None  # None: no previous value
    text: str  # the value as shown ("—" when there is none)
    met: bool | None  # coloured by whether the target is met


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    x0: int  # where bars start
    bars: list[Bar]
    target_x: float | None
    target_text: str | None


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:g}{unit}"


def bar_chart(items: list[tuple[str, float | None, float | None, bool | None]], *, unit: str = "",
              maximum: float | None = None, target: float | None = None) -> BarChart | None:
    """One bar per (label, value, previous, met); the scale runs from 0 to ``maximum`` (else the largest
    of the values and the target). None when there is nothing to draw."""
    if not items:
        return None
    top = maximum or max([x for _, v, p, _ in items for x in (v, p) if x is not None] + [target or 0, 1e-9])
    span = WIDTH - LABEL_W - VALUE_W

    def px(value: float | None) -> float | None:
        return None if value is None else round(max(0.0, min(value, top)) / top * span, 1)

    bars = [Bar(label, TOP + i * ROW_H, px(value) or 0.0, px(previous), _shown(value, unit), met)
            for i, (label, value, previous, met) in enumerate(items)]
    target_x = None if target is None else round(LABEL_W + px(target), 1)
    return BarChart(WIDTH, TOP * 2 + ROW_H * len(items) + 12, LABEL_W, bars, target_x,
                    None if target is None else _shown(target, unit))
