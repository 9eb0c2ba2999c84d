"""A small line chart drawn straight to SVG: the trial dashboard's two plots.

matplotlib took 100–400 ms per plot (glyphs turned into paths, a second draw for the tight bounding box), more than
the whole dashboard's budget; these charts are a few dozen SVG elements written from the data in well under a
millisecond. Every text is escaped; numbers are formatted by us, so nothing from the database reaches the markup
unescaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

COLOURS = ["#417690", "#ba2121", "#2e7d32", "#8e44ad", "#e67e22", "#16a085"]
WIDTH, HEIGHT = 600, 270
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 70


def nice_ticks(top: float, *, integer: bool = False, count: int = 5) -> list[float]:
    """Ticks from 0 to at least `top`, at a 1/2/5 × 10^k step."""
    top = max(top, 1.0)
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, round(step))
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    step: bool = False


@dataclass
class Chart:
    """x values are numbers (callers map dates to numbers); `xticks` = [(x, label)]; `ylim` = (0, top)."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xticks: list[tuple[float, str]] = field(default_factory=list)
    ylim: tuple[float, float] = (0.0, 1.0)
    yticks: list[float] = field(default_factory=list)
    rotate_xticks: bool = False
    legend: bool = False

    def _sx(self, x: float, lo: float, hi: float) -> float:
        return LEFT + (x - lo) / ((hi - lo) or 1) * (WIDTH - LEFT - RIGHT) if hi > lo else (LEFT + WIDTH - RIGHT) / 2

    def _sy(self, y: float) -> float:
        lo, hi = self.ylim
        return HEIGHT - BOTTOM - (y - lo) / ((hi - lo) or 1) * (HEIGHT - TOP - BOTTOM)

    def svg(self) -> str:
        xs = [x for s in self.series for x, _ in s.points] + [x for x, _ in self.xticks]
        lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.03
        lo, hi = lo - pad, hi + pad
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
            f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" font-size="13">{escape(self.title)}</text>',
        ]
        x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
        out.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#333"/>')
        for y in self.yticks:
            sy = self._sy(y)
            out.append(f'<line x1="{x0 - 4}" y1="{sy:.1f}" x2="{x0}" y2="{sy:.1f}" stroke="#333"/>')
            out.append(f'<text x="{x0 - 6}" y="{sy + 4:.1f}" text-anchor="end">{_num(y)}</text>')
        for x, label in self.xticks:
            sx = self._sx(x, lo, hi)
            out.append(f'<line x1="{sx:.1f}" y1="{y0}" x2="{sx:.1f}" y2="{y0 + 4}" stroke="#333"/>')
            if self.rotate_xticks:
                out.append(
                    f'<text x="{sx:.1f}" y="{y0 + 14}" text-anchor="end" '
                    f'transform="rotate(-30 {sx:.1f} {y0 + 14})">{escape(label)}</text>'
                )
            else:
                out.append(f'<text x="{sx:.1f}" y="{y0 + 16}" text-anchor="middle">{escape(label)}</text>')
        out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(self.xlabel)}</text>')
        out.append(
            f'<text x="14" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(y0 + y1) / 2:.0f})">{escape(self.ylabel)}</text>'
        )
        for i, s in enumerate(self.series):
            colour = COLOURS[i % len(COLOURS)]
            pts = [(self._sx(x, lo, hi), self._sy(y)) for x, y in s.points]
            if s.step:  # drawn "post": the value holds until the next point
                path = []
                for j, (px, py) in enumerate(pts):
                    path.append(f"{px:.1f},{pts[j - 1][1]:.1f} {px:.1f},{py:.1f}" if j else f"{px:.1f},{py:.1f}")
                line = " ".join(path)
            else:
                line = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            out.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}"/>' for px, py in pts)
            if self.legend:
                ly = y0 - 12 - 14 * (len(self.series) - 1 - i)
                out.append(
                    f'<line x1="{x0 + 8}" y1="{ly}" x2="{x0 + 24}" y2="{ly}" stroke="{colour}" stroke-width="2"/>'
                )
                out.append(f'<text x="{x0 + 28}" y="{ly + 4}">{escape(s.label)}</text>')
        out.append("</svg>")
        return "".join(out)
