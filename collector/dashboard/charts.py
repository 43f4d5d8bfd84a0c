"""Collector dashboard: charts as inline SVG, drawn on the server. Pure: strings in, strings out.

Three charts: :func:`timeline_svg` (verdict counts over time, stacked), :func:`outage_svg`
(outage intervals per network on a time axis) and :func:`bar_svg` (labelled horizontal
bars). Each returns one ``<svg role="img">`` with a ``<title>`` and ``<desc>`` (what a screen
reader says, and a one-line summary of the numbers) and text labels for its axes and legend,
as ``markupsafe.Markup``: a str that Jinja2 inserts as it is, every text in it escaped here.

Colours are presentation attributes (``fill="#..."``), never ``style``: the pages' CSP
allows no inline style. Each verdict has one colour (:data:`VERDICT_COLOURS`, by layer: DNS
ambers, TCP blues, TLS purples, HTTP reds, the non-blocking verdicts green and greys); the
dashboard's CSS for the matrix is built from the same table. One ``<path>`` per verdict keeps
a week of hourly bars to a few kilobytes. Why the server draws them: docs/design/009-dashboard.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

__all__ = [
    "NOT_BLOCKING_ORDER",
    "OUTAGE_COLOURS",
    "VERDICT_COLOURS",
    "Interval",
    "bar_svg",
    "outage_svg",
    "text_colour",
    "timeline_svg",
    "verdict_colour",
]

# fmt: off
VERDICT_COLOURS: dict[str, str] = {
    "ok": "#4d9a5a", "down": "#8c8c8c", "offline": "#4a4a4a", "inconclusive": "#c4c4c4",
    "dns.nxdomain": "#e69f00", "dns.servfail": "#f2c14e", "dns.refused": "#c98a00",
    "dns.timeout": "#f6d88f", "dns.bogon": "#a87000", "dns.mismatch": "#d9822b",
    "dns.injected": "#8a5200",
    "tcp.timeout": "#56b4e9", "tcp.reset": "#0072b2", "tcp.refused": "#1f4e79",
    "tls.reset": "#cc79a7", "tls.timeout": "#e5b0cf", "tls.eof": "#9a4b7c", "tls.mitm": "#5e1f4d",
    "http.reset": "#d55e00", "http.timeout": "#f09a63", "http.eof": "#a84400",
    "http.blockpage": "#8b1a1a", "http.diff": "#e07b7b",
    "throttled": "#6a3d9a", "quic.blocked": "#1b9e77", "vpn.blocked": "#0d5e47",
}
# fmt: on
UNKNOWN_COLOUR = "#777777"
# Drawn last (on top of a stack), so the blocking verdicts sit on the axis and stand out.
NOT_BLOCKING_ORDER = ("inconclusive", "down", "offline", "ok")
OUTAGE_COLOURS = {"offline": "#b2182b", "silent": "#9e9e9e", "degraded": "#ef8a62"}

FONT = 'font-family="system-ui,sans-serif" font-size="11"'
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Tick spacings to choose from: the first giving at most MAX_TICKS ticks on the axis.
_STEPS = (HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS,
          14 * DAY_MS, 28 * DAY_MS, 91 * DAY_MS, 364 * DAY_MS)  # fmt: skip
MAX_TICKS = 8
LEFT, RIGHT, TOP = 44, 8, 8
AXIS_H = 18  # the time axis's labels, under the plot
LEGEND_ROW = 16


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, UNKNOWN_COLOUR)


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (#rrggbb)."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lum = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2]
    return "#000" if luminance > 0.179 else "#fff"


def _n(x: float) -> str:
    """A coordinate, short: one decimal at most."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str | int, anchor: str = "") -> str:
    where = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text x="{_n(x)}" y="{_n(y)}"{where}>{escape(str(text))}</text>'


def _utc(ms: int, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(ms / 1000))


def _open(chart_id: str, width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT} '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>'
    )


def _time_axis(since: int, until: int, x0: float, x1: float, y: float) -> list[str]:
    """Tick marks and UTC labels along ``y``, on the whole hours or days between."""
    span = max(1, until - since)
    step = next((s for s in _STEPS if span / s <= MAX_TICKS), _STEPS[-1])
    fmt = (
        "%H:%M"
        if step < DAY_MS and span <= DAY_MS
        else "%m-%d %H:%M"
        if step < DAY_MS
        else "%Y-%m-%d"
    )
    scale = (x1 - x0) / span
    out = [f'<path d="M{_n(x0)} {_n(y)}H{_n(x1)}" stroke="#555"/>']
    tick = since + (-since) % step
    while tick <= until:
        x = x0 + (tick - since) * scale
        out.append(f'<path d="M{_n(x)} {_n(y)}v4" stroke="#555"/>')
        # A label at either end is kept inside the chart.
        anchor = "end" if x > x1 - 24 else "start" if x < x0 + 24 else "middle"
        out.append(_text(x, y + 14, _utc(tick, fmt), anchor))
        tick += step
    return out


def _legend(
    items: Sequence[tuple[str, str]], x0: float, y0: float, width: float
) -> tuple[list[str], float]:
    """Swatches and labels in rows across ``width``; the parts and the height they take."""
    out: list[str] = []
    x, y = x0, y0
    for label, colour in items:
        w = 18 + 6.5 * len(label)
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + LEGEND_ROW
        out.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="10" height="10" fill="{colour}"/>')
        out.append(_text(x + 14, y + 9, label))
        x += w
    return out, (y - y0 + LEGEND_ROW if items else 0)


def _stack_order(verdicts: set[str]) -> list[str]:
    blocking = sorted(v for v in verdicts if v not in NOT_BLOCKING_ORDER)
    return blocking + [v for v in NOT_BLOCKING_ORDER if v in verdicts]


def timeline_svg(
    series: Sequence[tuple[int, Mapping[str, int]]],
    *,
    bucket_ms: int,
    title: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    chart_id: str = "timeline",
    width: int = 720,
    height: int = 200,
) -> Markup:
    """Stacked bars of verdict counts per bucket, as ``Storage.timeline`` returns them:
    (bucket start ms, {verdict: count}), oldest first. The axis runs from ``since_ms`` (else
    the first bucket) to ``until_ms`` (else the end of the last); ``chart_id`` must be unique
    in its page (it names the title and description)."""
    totals: dict[str, int] = {}
    for _, counts in series:
        for verdict, n in counts.items():
            totals[verdict] = totals.get(verdict, 0) + n
    order = _stack_order(set(totals))
    since = since_ms if since_ms is not None else (series[0][0] if series else 0)
    until = (
        until_ms
        if until_ms is not None
        else (series[-1][0] + bucket_ms if series else since + bucket_ms)
    )
    x0, x1 = LEFT, width - RIGHT
    legend, legend_h = _legend(
        [(f"{v} ({totals[v]})", verdict_colour(v)) for v in order], x0, 0, x1 - x0
    )
    plot_bottom = height - AXIS_H - legend_h - 6
    peak = max((sum(c.values()) for _, c in series), default=0)
    desc = _timeline_desc(totals, order, since, until)
    parts = [_open(chart_id, width, height, title, desc)]
    if not series or peak == 0:
        parts.append(_text((x0 + x1) / 2, plot_bottom / 2, "no measurements then", "middle"))
    else:
        parts += _bars(series, order, (since, until, bucket_ms), (x0, x1, TOP, plot_bottom), peak)
    parts += _time_axis(since, until, x0, x1, plot_bottom)
    parts.append(f'<g transform="translate(0 {_n(height - legend_h)})">{"".join(legend)}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _timeline_desc(totals: Mapping[str, int], order: Sequence[str], since: int, until: int) -> str:
    fmt = "%Y-%m-%d %H:%M UTC"
    total = sum(totals.values())
    counts = ", ".join(f"{v} {totals[v]}" for v in order) or "none"
    return f"{total} measurements from {_utc(since, fmt)} to {_utc(until, fmt)}: {counts}."


def _bars(
    series: Sequence[tuple[int, Mapping[str, int]]],
    order: Sequence[str],
    span: tuple[int, int, int],
    box: tuple[float, float, float, float],
    peak: int,
) -> list[str]:
    since, until, bucket_ms = span
    x0, x1, top, bottom = box
    scale_x = (x1 - x0) / max(1, until - since)
    scale_y = (bottom - top) / peak
    bar_w = max(1.0, bucket_ms * scale_x * 0.9)
    paths: dict[str, list[str]] = {v: [] for v in order}
    for start, counts in series:
        if start + bucket_ms <= since or start >= until:
            continue
        x = x0 + (start - since) * scale_x
        y = bottom
        for verdict in order:
            n = counts.get(verdict, 0)
            if n:
                h = n * scale_y
                y -= h
                paths[verdict].append(f"M{_n(x)} {_n(y)}h{_n(bar_w)}v{_n(h)}h-{_n(bar_w)}z")
    out = [
        f'<path fill="{verdict_colour(v)}" d="{"".join(d)}"><title>{escape(v)}</title></path>'
        for v, d in paths.items()
        if d
    ]
    # The count scale: zero and the peak, on the left.
    out.append(_text(x0 - 4, top + 8, peak, "end"))
    out.append(_text(x0 - 4, bottom, 0, "end"))
    out.append(f'<path d="M{_n(x0)} {_n(top)}V{_n(bottom)}" stroke="#555"/>')
    return out


Interval = tuple[int, int | None, str]  # start ms, end ms (None: still going on), kind


def outage_svg(
    rows: Sequence[tuple[str, Sequence[Interval]]],
    *,
    since_ms: int,
    until_ms: int,
    title: str,
    chart_id: str = "outages",
    width: int = 720,
    row_height: int = 20,
) -> Markup:
    """One row per network (its label, e.g. "AS64500 PK"), a bar for each interval of its
    kind (:data:`OUTAGE_COLOURS`: offline, silent, degraded) on a shared time axis from
    ``since_ms`` to ``until_ms``; an interval with no end runs to the axis's end."""
    label_w = min(240, 10 + 6.5 * max((len(label) for label, _ in rows), default=4))
    x0, x1 = label_w, width - RIGHT
    kinds = sorted({kind for _, intervals in rows for _, _, kind in intervals})
    legend, legend_h = _legend(
        [(k, OUTAGE_COLOURS.get(k, UNKNOWN_COLOUR)) for k in kinds], x0, 0, x1 - x0
    )
    plot_h = max(1, len(rows)) * row_height
    height = round(TOP + plot_h + AXIS_H + legend_h + 6)
    count = sum(len(intervals) for _, intervals in rows)
    fmt = "%Y-%m-%d %H:%M UTC"
    desc = (f"{count} outage or degraded periods in {len(rows)} rows from "
            f"{_utc(since_ms, fmt)} to {_utc(until_ms, fmt)}.")  # fmt: skip
    parts = [_open(chart_id, width, height, title, desc)]
    scale = (x1 - x0) / max(1, until_ms - since_ms)
    if not rows:
        parts.append(_text((x0 + x1) / 2, TOP + 14, "no outages in this period", "middle"))
    for index, (label, intervals) in enumerate(rows):
        y = TOP + index * row_height
        parts.append(_text(label_w - 6, y + row_height * 0.65, label, "end"))
        parts.append(f'<path d="M{_n(x0)} {_n(y + row_height)}H{_n(x1)}" stroke="#ddd"/>')
        for start, end, kind in intervals:
            a = max(since_ms, start)
            b = until_ms if end is None else min(until_ms, end)
            if b < a:
                continue
            w = max(2.0, (b - a) * scale)
            span = f"{kind}: {_utc(start, fmt)} to {'ongoing' if end is None else _utc(end, fmt)}"
            parts.append(
                f'<rect x="{_n(x0 + (a - since_ms) * scale)}" y="{_n(y + 3)}" width="{_n(w)}" '
                f'height="{row_height - 6}" fill="{OUTAGE_COLOURS.get(kind, UNKNOWN_COLOUR)}">'
                f"<title>{escape(span)}</title></rect>"
            )
    parts += _time_axis(since_ms, until_ms, x0, x1, TOP + plot_h)
    parts.append(f'<g transform="translate(0 {_n(height - legend_h)})">{"".join(legend)}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_svg(
    items: Sequence[tuple[str, int]],
    *,
    title: str,
    colours: Mapping[str, str] | None = None,
    chart_id: str = "bars",
    width: int = 480,
    bar_height: int = 18,
) -> Markup:
    """Horizontal bars, one per (label, value), in the order given, each labelled with its
    value; a label's colour comes from ``colours`` (else its verdict colour, else grey)."""
    label_w = min(200, 8 + 7 * max((len(label) for label, _ in items), default=4))
    value_w = 8 + 7 * len(str(max((v for _, v in items), default=0)))
    x0, x1 = label_w, width - value_w
    height = TOP * 2 + max(1, len(items)) * (bar_height + 4)
    peak = max((v for _, v in items), default=0)
    desc = "; ".join(f"{label}: {value}" for label, value in items) or "no data"
    parts = [_open(chart_id, width, height, title, desc)]
    for index, (label, value) in enumerate(items):
        y = TOP + index * (bar_height + 4)
        colour = (colours or {}).get(label) or verdict_colour(label)
        w = 0.0 if peak == 0 else max(1.0, (x1 - x0) * value / peak)
        parts.append(_text(label_w - 6, y + bar_height * 0.7, label, "end"))
        parts.append(
            f'<rect x="{x0}" y="{y}" width="{_n(w)}" height="{bar_height}" fill="{colour}"/>'
        )
        parts.append(_text(x0 + w + 4, y + bar_height * 0.7, value))
    if not items:
        parts.append(_text(width / 2, TOP + 12, "no data", "middle"))
    parts.append("</svg>")
    return Markup("".join(parts))
