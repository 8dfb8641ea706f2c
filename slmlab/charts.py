"""SVG chart geometry for the pages: data scaled into a padded plot area.

The templates draw the SVG; these functions only place points, bars and ticks in its
coordinates, so a chart renders the same from a page load and a websocket push.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LINE_POINTS = 400  # more would not show on a 640-pixel chart


@dataclass(frozen=True)
class Frame:
    """A chart's size and the padding around its plot area (room for axis labels)."""

    width: int = 640
    height: int = 220
    left: int = 48
    right_pad: int = 12
    top: int = 12
    bottom_pad: int = 28

    @property
    def right(self) -> int:
        return self.width - self.right_pad

    @property
    def bottom(self) -> int:
        return self.height - self.bottom_pad

    def x(self, value: float, lo: float, hi: float) -> float:
        """``value`` in [lo, hi] across the plot area, left to right."""
        return self.left + (self.right - self.left) * (value - lo) / (hi - lo)

    def y(self, value: float, lo: float, hi: float) -> float:
        """``value`` in [lo, hi] up the plot area (screen y grows downwards)."""
        return self.top + (self.bottom - self.top) * (1 - (value - lo) / (hi - lo))

    def box(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "left": self.left,
            "right": self.right,
            "top": self.top,
            "bottom": self.bottom,
        }


def thin(points: list[tuple[int, float]], most: int = MAX_LINE_POINTS) -> list[tuple[int, float]]:
    """At most about ``most`` evenly spaced points, always keeping the last one."""
    stride = max(1, len(points) // most)
    shown = points[::stride]
    if shown and shown[-1] != points[-1]:
        shown.append(points[-1])
    return shown


def loss_chart(
    points: list[tuple[int, float]],
    eval_points: list[tuple[int, float]] | None = None,
    frame: Frame = Frame(),
) -> dict:
    """Training and validation (step, loss) points as polylines on one shared scale."""
    eval_points = eval_points or []
    if not points:
        return {**frame.box(), "polyline": "", "ticks": [], "empty": True}
    shown = thin(points)
    everything = shown + eval_points
    steps = [s for s, _ in everything]
    losses = [v for _, v in everything]
    lo, hi = min(losses), max(losses)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    s0 = min(steps)
    s1 = max(max(steps), s0 + 1)

    def line(series: list[tuple[int, float]]) -> str:
        return " ".join(f"{frame.x(s, s0, s1):.1f},{frame.y(v, lo, hi):.1f}" for s, v in series)

    return {
        **frame.box(),
        "polyline": line(shown),
        "eval_polyline": line(eval_points),
        "eval_dots": [
            {"x": frame.x(s, s0, s1), "y": frame.y(v, lo, hi), "step": s, "loss": v}
            for s, v in eval_points
        ],
        "ticks": [{"y": frame.y(v, lo, hi), "label": f"{v:.3g}"} for v in (hi, (hi + lo) / 2, lo)],
        "empty": False,
        "first_step": s0,
        "last_step": max(steps),
        "last_loss": points[-1][1],
    }


def histogram_chart(result: dict, frame: Frame = Frame()) -> dict:
    """Bars of a dataset's token-length histogram and its max-length line."""
    bucket = result["histogram"]["width"]
    counts = result["histogram"]["counts"]
    max_len = result["max_len"]
    buckets = max(len(counts), math.ceil((max_len + 1) / bucket))
    span = buckets * bucket
    tallest = max(counts) or 1
    bars = []
    for i, count in enumerate(counts):
        if not count:
            continue
        top = frame.y(count, 0, tallest)
        bars.append(
            {
                "x": round(frame.x(i * bucket, 0, span), 1),
                "y": round(top, 1),
                "w": round(max(1.0, frame.x(bucket, 0, span) - frame.x(0, 0, span) - 1), 1),
                "h": round(frame.bottom - top, 1),
                "low": i * bucket,
                "high": (i + 1) * bucket - 1,
                "count": count,
                "over": i * bucket + bucket - 1 > max_len,
            }
        )
    ticks = [
        {"x": round(frame.x(t, 0, span), 1), "label": t} for t in range(0, span + 1, span // 4 or 1)
    ]
    return {
        **frame.box(),
        "bars": bars,
        "ticks": ticks,
        "tallest": tallest,
        "max_len_x": round(frame.x(max_len, 0, span), 1),
        "max_len": max_len,
    }


def overlay_chart(series: list[list[tuple[int, float]]], frame: Frame = Frame()) -> dict:
    """Several (step, value) lines on one shared scale (runs compared); a line per series,
    in the order given, empty ones included so that colours stay with their run."""
    everything = [point for points in series for point in points]
    if not everything:
        return {**frame.box(), "lines": [], "ticks": [], "empty": True}
    steps = [s for s, _ in everything]
    values = [v for _, v in everything]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    s0 = min(steps)
    s1 = max(max(steps), s0 + 1)
    lines = [
        " ".join(f"{frame.x(s, s0, s1):.1f},{frame.y(v, lo, hi):.1f}" for s, v in thin(points))
        for points in series
    ]
    return {
        **frame.box(),
        "lines": lines,
        "ticks": [{"y": frame.y(v, lo, hi), "label": f"{v:.3g}"} for v in (hi, (hi + lo) / 2, lo)],
        "empty": False,
        "first_step": s0,
        "last_step": max(steps),
    }
