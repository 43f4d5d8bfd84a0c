"""Dashboard charts: well-formed, accessible SVG whose shapes follow the numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from agent.model.verdicts import VERDICTS
from collector.dashboard.charts import (
    OUTAGE_COLOURS,
    VERDICT_COLOURS,
    Interval,
    bar_svg,
    outage_svg,
    text_colour,
    timeline_svg,
    verdict_colour,
)

SVG = "{http://www.w3.org/2000/svg}"
HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None
    assert desc is not None
    # The accessible name and description are the chart's own title and desc.
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "style" not in svg  # the pages' CSP allows no inline style
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def heights(d: str) -> list[float]:
    """The bars' heights in a timeline path: each bar is M x y h w v H h -w z."""
    return [float(v) for v in re.findall(r"v([0-9.]+)h-", d)]


def test_every_verdict_has_its_own_colour() -> None:
    assert set(VERDICT_COLOURS) == VERDICTS
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICT_COLOURS)
    assert verdict_colour("future.verdict") not in VERDICT_COLOURS.values()
    assert (text_colour("#ffffff"), text_colour("#000000")) == ("#000", "#fff")


def test_timeline_stacks_verdicts_in_proportion_and_labels_them() -> None:
    series = [(T0, {"ok": 1, "tls.reset": 3}), (T0 + 2 * HOUR, {"tls.reset": 2})]
    root = parse(
        timeline_svg(series, bucket_ms=HOUR, title="x.com", since_ms=T0, until_ms=T0 + 4 * HOUR)
    )
    paths = {p.get("fill"): p for p in root.iter(f"{SVG}path") if p.get("fill")}
    reset, ok = paths[verdict_colour("tls.reset")], paths[verdict_colour("ok")]
    reset_h, ok_h = heights(reset.get("d", "")), heights(ok.get("d", ""))
    assert len(reset_h) == 2
    assert len(ok_h) == 1
    assert reset_h[0] == pytest.approx(3 * ok_h[0], rel=0.02)
    assert reset_h[1] == pytest.approx(2 * ok_h[0], rel=0.02)
    labels = texts(root)
    assert "tls.reset (5)" in labels
    assert "ok (1)" in labels
    assert "4" in labels  # the peak, on the count axis
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert "6 measurements" in (desc.text or "")
    assert "tls.reset 5, ok 1" in (desc.text or "")  # blocks first, as stacked


def test_timeline_escapes_what_it_is_given() -> None:
    svg = timeline_svg([(T0, {"<b>": 1})], bucket_ms=HOUR, title="<script>alert(1)</script>")
    assert "<script>" not in svg
    assert "<b>" not in svg
    root = parse(svg)
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "<script>alert(1)</script>"


def test_an_empty_timeline_says_so() -> None:
    root = parse(timeline_svg([], bucket_ms=HOUR, title="t", since_ms=T0, until_ms=T0 + HOUR))
    assert "no measurements then" in texts(root)
    assert not [p for p in root.iter(f"{SVG}path") if p.get("fill")]


def test_time_axis_is_labelled_in_utc() -> None:
    day = 24 * HOUR
    since = T0 - T0 % day  # a UTC midnight
    root = parse(timeline_svg([], bucket_ms=HOUR, title="t", since_ms=since, until_ms=since + day))
    assert "00:00" in texts(root)
    assert "12:00" in texts(root)
    week = parse(
        timeline_svg([], bucket_ms=HOUR, title="t", since_ms=since, until_ms=since + 7 * day)
    )
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t) for t in texts(week))


def test_outages_run_to_the_axis_end_while_ongoing() -> None:
    rows: list[tuple[str, list[Interval]]] = [
        ("AS64500 PK", [(T0 + HOUR, T0 + 2 * HOUR, "offline")]),
        ("AS64501 PK", [(T0 + 3 * HOUR, None, "silent")]),
    ]
    root = parse(outage_svg(rows, since_ms=T0, until_ms=T0 + 4 * HOUR, title="Outages"))
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("height") != "10"]  # not the legend
    assert [r.get("fill") for r in rects] == [OUTAGE_COLOURS["offline"], OUTAGE_COLOURS["silent"]]
    widths = [float(r.get("width", 0)) for r in rects]
    # Both last one hour: the ongoing one is cut at the axis's end, four hours in.
    assert widths[0] == pytest.approx(widths[1], rel=0.02)
    ends = [float(r.get("x", 0)) + w for r, w in zip(rects, widths, strict=True)]
    assert ends[1] == pytest.approx(720 - 8, abs=0.2)
    assert {"AS64500 PK", "AS64501 PK", "offline", "silent"} <= set(texts(root))
    ongoing = rects[1].find(f"{SVG}title")
    assert ongoing is not None
    assert "ongoing" in (ongoing.text or "")


def test_bars_are_proportional_and_labelled() -> None:
    root = parse(bar_svg([("tls.reset", 40), ("x.com", 10)], title="Techniques"))
    rects = list(root.iter(f"{SVG}rect"))
    assert float(rects[0].get("width", 0)) == pytest.approx(
        4 * float(rects[1].get("width", 0)), abs=0.5
    )
    assert rects[0].get("fill") == verdict_colour("tls.reset")
    assert {"tls.reset", "x.com", "40", "10"} <= set(texts(root))
    assert "no data" in texts(parse(bar_svg([], title="none")))


def test_one_page_can_hold_several_charts() -> None:
    a = timeline_svg([], bucket_ms=HOUR, title="a", chart_id="one", since_ms=T0, until_ms=T0 + HOUR)
    b = timeline_svg([], bucket_ms=HOUR, title="b", chart_id="two", since_ms=T0, until_ms=T0 + HOUR)
    ids = re.findall(r'id="([^"]+)"', a + b)
    assert len(ids) == len(set(ids)) == 4
