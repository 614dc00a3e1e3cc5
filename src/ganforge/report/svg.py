"""Line charts as inline SVG: the report's curves, with no script and no network.

A chart is a list of series (name, xs, ys) drawn on shared axes with "nice"
ticks (1, 2, 5 times a power of ten; Heckbert 1990, "Nice numbers for graph
labels"), optionally on a log y axis. Non-finite values break a line rather
than bend it. Every text is XML-escaped, since run and metric names come
from users.
"""
from __future__ import annotations

import math
from html import escape
from typing import Optional, Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values covering [lo, hi], at most about ``most`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1.0) * 0.5, hi + (abs(hi) or 1.0) * 0.5
    raw = (hi - lo) / max(1, most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.0e}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def line_chart(series: Sequence[tuple], title: str = "", xlabel: str = "step", ylabel: str = "",
               log_y: bool = False, width: int = 460, height: int = 260, marks: Optional[Sequence[tuple]] = None) -> str:
    """An <svg> of ``series`` [(name, xs, ys), ...]; ``marks`` [(x, label), ...] draws dashed vertical lines
    (e.g. where a diagnostic began). Returns '' when no series has a finite point."""
    def usable(y) -> bool:
        return y is not None and math.isfinite(float(y)) and (not log_y or float(y) > 0)

    pts = []                        # per series: runs of consecutive usable points
    for name, xs, ys in series:
        runs, cur = [], []
        for x, y in zip(xs, ys):
            if usable(y):
                cur.append((float(x), float(y)))
            elif cur:
                runs.append(cur)
                cur = []
        pts.append((name, runs + ([cur] if cur else [])))
    allx = [x for _, runs in pts for r in runs for x, _ in r]
    ally = [y for _, runs in pts for r in runs for _, y in r]
    if not ally:
        return ""
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(allx), max(allx)
    y0, y1 = min(map(tf, ally)), max(map(tf, ally))
    xticks = nice_ticks(x0, x1) if x1 > x0 else [x0]        # one step logged: one tick, in the middle
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if log_y:
        y0, y1 = math.floor(y0), math.ceil(y1 + 1e-12)
        if y1 == y0:
            y1 = y0 + 1
        yticks = [float(e) for e in range(int(y0), int(y1) + 1)]
        ylab = [f"1e{int(e)}" if abs(e) > 2 else _fmt(10 ** e) for e in yticks]
    else:
        yticks = nice_ticks(y0, y1)
        y0, y1 = min(yticks[0], y0), max(yticks[-1], y1)
        ylab = [_fmt(t) for t in yticks]
    left, right, top, bottom = 52, 20, 24 if title else 10, 34
    legend_h = 16 * ((len(series) + 2) // 3) if len(series) > 1 else 0
    H = height + legend_h
    pw, ph = width - left - right, height - top - bottom

    def X(x):
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y):
        return top + ph - (y - y0) / ((y1 - y0) or 1.0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{H}" '
           f'viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="11">']
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="15" text-anchor="middle" font-weight="bold">{escape(title)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>')
    for t, lab in zip(yticks, ylab):
        if y0 - 1e-12 <= t <= y1 + 1e-12:
            y = Y(t)
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(lab)}</text>')
    for t in xticks:
        if x0 - 1e-9 <= t <= x1 + 1e-9:
            x = X(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{escape(_fmt(t))}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 29}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(12 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
                   f'{escape(ylabel + (" (log)" if log_y else ""))}</text>')
    for x, label in marks or ():
        if x0 <= x <= x1:
            out.append(f'<line class="mark" x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{top}" y2="{top + ph}" '
                       f'stroke="#c00" stroke-dasharray="4 3"><title>{escape(str(label))}</title></line>')
    for i, (name, runs) in enumerate(pts):
        color = PALETTE[i % len(PALETTE)]
        for r in runs:
            xy = [(X(x), Y(tf(y))) for x, y in r]
            if len(xy) == 1:
                out.append(f'<circle class="series" cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="2.5" fill="{color}">'
                           f'<title>{escape(str(name))}</title></circle>')
            else:
                out.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.5" '
                           f'points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in xy)}"><title>{escape(str(name))}</title>'
                           '</polyline>')
    if len(series) > 1:
        for i, (name, _, _) in enumerate(series):
            lx, ly = left + (i % 3) * (pw / 3), height + 4 + 16 * (i // 3)
            out.append(f'<rect x="{lx:.1f}" y="{ly}" width="12" height="3" fill="{PALETTE[i % len(PALETTE)]}"/>')
            out.append(f'<text x="{lx + 16:.1f}" y="{ly + 5}">{escape(str(name))}</text>')
    out.append("</svg>")
    return "".join(out)
