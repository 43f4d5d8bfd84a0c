"""The daemon's ``trace`` job (``agent.daemon.trace``) and its ``[trace]`` settings: which
results wait for a trace (only traceable ones, a bounded number), when each (URL, verdict) was
last traced (kept in a real spool's meta, pruned past the interval, bounded, and surviving a
corrupt value), which of them a run takes (within ``max_targets``, the budget and the disk),
and what a trace costs the daily budget. Tracing itself needs the network: the lab's
end-to-end tests (tests/e2e/test_trace_e2e.py) run it."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.budget import DailyBudget, measurement_bytes, trace_bytes
from agent.daemon.config import (
    AgentConfig,
    ConfigError,
    TraceSettings,
    load_config,
    parse_config,
)
from agent.daemon.disk import Disk
from agent.daemon.spool import Spool
from agent.daemon.trace import MAX_PENDING, MAX_REMEMBERED, META_TRACED, TRACE_BYTES, TraceRuns
from agent.model import trace as t
from agent.model.measurement import SiteMeasurement, Verdict
from agent.model.trace import TraceReference
from tests import REPO
from tests.agent.observations import vantage
from tests.agent.traces import BEYOND, ROUTERS, hops, last, measurement, observation, pair

EXAMPLE = REPO / "deploy" / "agent.toml"
SOURCE = "/etc/netsonde/agent.toml"


def config(**trace: object) -> AgentConfig:
    raw: dict[str, Any] = {"collector": {"urls": ["https://collector.example.org"]}}
    if trace:
        raw["trace"] = trace
    return parse_config(raw, SOURCE)


def test_the_trace_table_defaults() -> None:
    settings = config().trace
    assert settings == TraceSettings()
    assert (settings.enabled, settings.interval, settings.max_targets, settings.max_ttl) == (
        True,
        86400.0,
        8,
        16,
    )


def test_the_trace_table_values() -> None:
    chosen = config(enabled=False, interval="6h", max_targets=100, max_ttl=32).trace
    assert chosen == TraceSettings(enabled=False, interval=21600.0, max_targets=100, max_ttl=32)
    assert config(max_targets=1, max_ttl=1, interval=90).trace == TraceSettings(
        interval=90.0, max_targets=1, max_ttl=1
    )


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ({"max_targets": 0}, "trace.max_targets: must be from 1 to 100, not 0"),
        ({"max_targets": 101}, "trace.max_targets: must be from 1 to 100, not 101"),
        ({"max_ttl": 0}, "trace.max_ttl: must be from 1 to 32, not 0"),
        ({"max_ttl": 33}, "trace.max_ttl: must be from 1 to 32, not 33"),
        ({"max_ttl": "16"}, "trace.max_ttl"),
        ({"enabled": 1}, "trace.enabled"),
        ({"interval": -60}, "trace.interval: -60: must be more than zero"),
        ({"interval": "soon"}, "trace.interval"),
        ({"max_tll": 16}, "trace.max_tll: unknown key (did you mean trace.max_ttl?)"),
        ({"intervall": "1h"}, "trace.intervall: unknown key (did you mean trace.interval?)"),
        ({"ttl": 3}, "trace.ttl: unknown key"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_the_trace_table_refuses(trace: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**trace)
    assert str(caught.value).startswith(f"{SOURCE}: {message}")


def test_a_trace_key_at_the_top_level_is_pointed_to_its_table() -> None:
    raw = {"collector": {"urls": ["https://collector.example.org"]}, "max_ttl": 16}
    with pytest.raises(ConfigError, match=r"max_ttl: unknown key \(did you mean trace.max_ttl\?\)"):
        parse_config(raw, SOURCE)


def test_the_example_file_still_parses_and_documents_the_defaults() -> None:
    assert load_config(EXAMPLE).trace == TraceSettings()
    # Its commented [trace] lines, uncommented, are the defaults.
    lines = EXAMPLE.read_text().split("[trace]\n", 1)[1].split("\n[", 1)[0].splitlines()
    shown = tomllib.loads(
        "\n".join(line[1:] for line in lines if line.startswith("#") and " = " in line)
    )
    assert set(shown) == {"enabled", "interval", "max_targets", "max_ttl"}
    assert config(**shown).trace == TraceSettings()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(tmp_path / "spool.db", max_bytes=10**7) as opened:
        yield opened


def runs(spool: Spool, tmp_path: Path, settings: AgentConfig | None = None) -> TraceRuns:
    chosen = settings or config()
    budget = DailyBudget(chosen.limits.daily_bandwidth, spool)
    return TraceRuns(chosen, budget, spool, Disk(tmp_path), lambda: None)


def blocked(url: str, verdict: str = "tls.reset", trigger: str = "sni") -> SiteMeasurement:
    return SiteMeasurement(
        id="0190b7a4-0000-7000-8000-000000000000",
        url=url,
        started_ms=1_717_171_717_171,
        ms=900.0,
        agent=vantage(),
        control=None,
        control_failure=None,
        online=True,
        verdict=Verdict(verdict, {"trigger": trigger}),
    )


def test_offer_keeps_only_traceable_results(spool: Spool, tmp_path: Path) -> None:
    trace = runs(spool, tmp_path)
    sni = blocked("https://a.example/")
    trace.offer(sni)
    trace.offer(blocked("https://b.example/", "ok"))
    trace.offer(blocked("https://c.example/", "tls.reset", "ip"))  # the swap failed too
    trace.offer(blocked("https://d.example/", "dns.nxdomain", "resolver"))
    trace.offer(replace(blocked("https://e.example/"), trace=observation()))
    ip = blocked("http://f.example/", "tcp.timeout", "ip")
    trace.offer(ip)
    assert trace.pending == {
        "https://a.example/ tls.reset": sni,
        "http://f.example/ tcp.timeout": ip,
    }
    # The same URL blocked another way waits too; the same (URL, verdict) once, the latest.
    other = blocked("https://a.example/", "tls.timeout")
    again = replace(sni, ms=1.0)
    trace.offer(other)
    trace.offer(again)
    assert list(trace.pending) == [
        "https://a.example/ tls.reset",
        "http://f.example/ tcp.timeout",
        "https://a.example/ tls.timeout",
    ]
    assert trace.pending["https://a.example/ tls.reset"] is again
    disabled = runs(spool, tmp_path, config(enabled=False))
    disabled.offer(sni)
    assert disabled.pending == {}


def test_offer_is_bounded(spool: Spool, tmp_path: Path) -> None:
    trace = runs(spool, tmp_path)
    for i in range(MAX_PENDING + 20):
        trace.offer(blocked(f"https://{i}.example/"))
    assert len(trace.pending) == MAX_PENDING
    assert "https://0.example/ tls.reset" in trace.pending
    assert f"https://{MAX_PENDING}.example/ tls.reset" not in trace.pending  # the newest dropped
    # A waiting one is still replaced by its latest result.
    latest = replace(blocked("https://0.example/"), ms=2.0)
    trace.offer(latest)
    assert len(trace.pending) == MAX_PENDING
    assert trace.pending["https://0.example/ tls.reset"] is latest


def now_ms() -> int:
    return int(time.time() * 1000)


def test_done_keeps_what_was_traced_within_the_interval(spool: Spool, tmp_path: Path) -> None:
    trace = runs(spool, tmp_path, config(interval="1h"))
    now = now_ms()
    stored = {
        "https://a.example/ tls.reset": now - 60_000,
        "https://b.example/ tls.reset": now - 3_700_000,  # past the hour
        "https://c.example/ tls.reset": "yesterday",
        "https://d.example/ tls.reset": 1.5,
        "https://e.example/ tls.reset": now - 3_500_000,
    }
    spool.set_meta(META_TRACED, json.dumps(stored))
    assert trace._done() == {
        "https://a.example/ tls.reset": now - 60_000,
        "https://e.example/ tls.reset": now - 3_500_000,
    }


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', "null", 12, ""])
def test_done_survives_a_bad_meta_value(spool: Spool, tmp_path: Path, raw: str | int) -> None:
    spool.set_meta(META_TRACED, raw)
    assert runs(spool, tmp_path)._done() == {}


def test_done_with_nothing_remembered(spool: Spool, tmp_path: Path) -> None:
    assert runs(spool, tmp_path)._done() == {}


def test_remember_keeps_the_newest(spool: Spool, tmp_path: Path) -> None:
    trace = runs(spool, tmp_path)
    now = now_ms()
    done = {f"https://{i}.example/ tls.reset": now - 10_000 * i for i in range(MAX_REMEMBERED + 50)}
    trace._remember(done)
    raw = spool.get_meta(META_TRACED)
    assert isinstance(raw, str)
    kept = json.loads(raw)
    assert len(kept) == MAX_REMEMBERED
    assert kept == {key: at for key, at in done.items() if at > now - 10_000 * MAX_REMEMBERED}
    assert trace._done() == kept  # all within the day
    small = {"https://x.example/ tls.reset": now}
    trace._remember(small)
    assert trace._done() == small


def test_a_run_takes_the_due_within_max_targets(
    spool: Spool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = runs(spool, tmp_path, config(max_targets=2))
    trace.checked = True  # as if a capture could be opened: _trace, the network, is stubbed
    traced: list[str] = []

    async def fake(m: SiteMeasurement) -> bool:
        traced.append(m.url)
        return True

    monkeypatch.setattr(trace, "_trace", fake)
    spool.set_meta(META_TRACED, json.dumps({"https://a.example/ tls.reset": now_ms() - 1000}))
    for name in "abcd":
        trace.offer(blocked(f"https://{name}.example/"))
    asyncio.run(trace.run())
    assert traced == ["https://b.example/", "https://c.example/"]  # a was traced an hour ago
    assert trace.pending == {}
    assert set(trace._done()) == {f"https://{n}.example/ tls.reset" for n in "abc"}


def test_no_trace_starts_without_a_trace_worth_of_budget(
    spool: Spool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = runs(spool, tmp_path)
    trace.budget.limit = trace.budget.used + TRACE_BYTES - 1
    trace.checked = True
    traced: list[SiteMeasurement] = []

    async def fake(m: SiteMeasurement) -> bool:
        traced.append(m)
        return True

    monkeypatch.setattr(trace, "_trace", fake)
    trace.offer(blocked("https://a.example/"))
    asyncio.run(trace.run())
    assert traced == []
    assert spool.get_meta(META_TRACED) is None
    trace.budget.limit += 2  # a trace's worth left
    trace.offer(blocked("https://a.example/"))
    asyncio.run(trace.run())
    assert len(traced) == 1


def test_without_a_capture_a_run_only_empties_the_queue(
    spool: Spool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = runs(spool, tmp_path)
    trace.checked, trace.unavailable = True, "it needs CAP_NET_RAW"

    async def fail(m: SiteMeasurement) -> bool:
        raise AssertionError("traced without a capture")

    monkeypatch.setattr(trace, "_trace", fail)
    trace.offer(blocked("https://a.example/"))
    asyncio.run(trace.run())
    assert trace.pending == {}
    assert spool.get_meta(META_TRACED) is None


def test_trace_bytes_grow_with_attempts_and_answers() -> None:
    walk = observation(hops(*ROUTERS), pair(4, t.RESET, t.EXCEEDED, router=BEYOND))
    short = replace(walk, attempts=(*walk.attempts, last(t.RESET)))
    longer = replace(walk, attempts=(*walk.attempts, *pair(5, t.SILENT, t.SILENT), last(t.RESET)))
    answered = replace(walk, attempts=(*walk.attempts, last(t.DATA)))
    assert 0 < trace_bytes(short) < trace_bytes(longer)
    assert trace_bytes(short) < trace_bytes(answered)  # a data answer is a page's worth
    referenced = replace(short, references=(reference(),))
    assert trace_bytes(short) < trace_bytes(referenced)
    # An ip trigger's attempts are SYNs: no ClientHello or request goes out.
    ip = replace(short, trigger="ip")
    assert trace_bytes(ip) < trace_bytes(short)
    assert trace_bytes(replace(walk, attempts=())) == 0
    # A trace to max_ttl 32 (a pair each TTL, an answer last, both references) fits what a
    # run reserves for each trace.
    widest = observation(
        hops(*(f"198.51.100.{i}" for i in range(1, 33))),
        last(t.DATA),
        references=(reference(), reference()),
    )
    assert trace_bytes(widest) <= TRACE_BYTES
    assert measurement_bytes(measurement(short)) >= trace_bytes(short)


def reference() -> TraceReference:
    return TraceReference("198.51.100.200", 443, None)
