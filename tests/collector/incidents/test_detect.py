"""Incident detection (collector.incidents.detect) on constructed measurements stored in real
SQLite and PostgreSQL: each threshold, the merging of windows and networks, ends, outages,
and counts that match the measurements table."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from collector.incidents import BLOCKING, OUTAGE, Incident, Thresholds, detect
from collector.outages import find_outages
from collector.storage import Storage
from collector.storage.schema import measurements
from tests.collector.incidents.stored import HOUR, T0, Filler

W = 6 * HOUR
DAY = 24 * HOUR


def blocking(storage: Storage, t: Thresholds | None = None, **filters: object) -> list[Incident]:
    found = detect(storage, T0 - DAY, T0 + 7 * DAY, t, **filters)  # type: ignore[arg-type]
    return [i for i in found if i.kind == BLOCKING]


def test_a_blocked_domain_is_one_incident_with_its_technique_network_and_counts(
    storage: Storage,
) -> None:
    fill = Filler(storage)
    fill.add("tls.reset tls.reset tls.reset ok", "x.com", T0)
    fill.add("ok ok ok ok", "dawn.com", T0)
    (incident,) = blocking(storage)
    assert incident.domain == "x.com"
    assert (incident.start_ms, incident.last_seen_ms, incident.end_ms) == (T0, T0 + W, None)
    assert incident.ongoing
    assert incident.techniques == ("tls.reset",)
    assert incident.counts == {"ok": 1, "tls.reset": 3}
    assert (incident.measurements, incident.blocking, incident.agents) == (4, 3, 1)
    (network,) = incident.networks
    assert (network.asn, network.cc, network.agents) == (64500, "PK", 1)
    assert not incident.start_clipped


@pytest.mark.parametrize(
    ("verdicts", "t", "why"),
    [
        ("tls.reset tls.reset ok", Thresholds(), "two blocking measurements, three needed"),
        ("tls.reset tls.reset tls.reset ok ok ok ok", Thresholds(), "3 of 7 is under half"),
        ("tls.reset tls.reset tls.reset", Thresholds(min_agents=2), "one agent, two needed"),
        ("tls.reset " * 5 + "ok " * 5, Thresholds(min_share=0.6), "half, 60% needed"),
        ("ok ok ok ok ok down offline", Thresholds(), "a clean site"),
    ],
)
def test_each_threshold_keeps_a_window_below_it_from_being_an_incident(
    storage: Storage, verdicts: str, t: Thresholds, why: str
) -> None:
    Filler(storage).add(verdicts, "x.com", T0)
    assert blocking(storage, t) == [], why


def test_the_agents_threshold_counts_distinct_agents_that_saw_the_block(storage: Storage) -> None:
    fill = Filler(storage)
    fill.add("tls.reset tls.reset", "x.com", T0, agent="agent-a")
    fill.add("ok ok", "x.com", T0, agent="agent-b")  # measured, but saw no block
    two = Thresholds(min_agents=2, min_share=0.5)
    assert blocking(storage, two) == []
    fill.add("tls.reset tls.reset", "x.com", T0 + HOUR, agent="agent-b")
    (incident,) = blocking(storage, two)
    assert (incident.agents, incident.networks[0].agents) == (2, 2)
    assert incident.counts == {"ok": 2, "tls.reset": 4}


def test_offline_measurements_do_not_dilute_the_share(storage: Storage) -> None:
    Filler(storage).add("tls.reset tls.reset tls.reset ok offline offline offline", "x.com", T0)
    (incident,) = blocking(storage)
    assert incident.counts["offline"] == 3


def test_consecutive_windows_merge_across_a_window_too_thin_to_tell(storage: Storage) -> None:
    fill = Filler(storage)
    fill.add("tls.reset tls.reset tls.reset", "x.com", T0)
    fill.add("ok", "x.com", T0 + W)  # too few to say it is over
    fill.add("tls.reset tls.reset tls.reset tls.reset", "x.com", T0 + 2 * W)
    (incident,) = blocking(storage)
    assert (incident.start_ms, incident.last_seen_ms, incident.end_ms) == (T0, T0 + 3 * W, None)
    assert incident.counts == {"ok": 1, "tls.reset": 7}


def test_a_clear_window_ends_an_incident_and_a_later_block_is_a_new_one(storage: Storage) -> None:
    fill = Filler(storage)
    fill.add("dns.nxdomain " * 3, "x.com", T0)
    fill.add("dns.nxdomain " * 3, "x.com", T0 + W)
    fill.add("ok ok ok", "x.com", T0 + 2 * W)  # evidence that it worked again
    fill.add("tls.reset " * 3, "x.com", T0 + 4 * W)
    later, earlier = blocking(storage)
    assert (earlier.start_ms, earlier.end_ms, earlier.techniques) == (
        T0, T0 + 2 * W, ("dns.nxdomain",),
    )  # fmt: skip
    assert earlier.counts == {"dns.nxdomain": 6}
    assert (later.start_ms, later.end_ms, later.techniques) == (T0 + 4 * W, None, ("tls.reset",))


def test_networks_blocked_at_once_are_one_incident_and_asn_picks_one(storage: Storage) -> None:
    fill = Filler(storage)
    fill.add("tls.reset " * 3, "x.com", T0, asn=64500, agent="agent-a")
    fill.add("dns.nxdomain " * 4, "x.com", T0 + W, asn=64501, cc="IN", agent="agent-b")
    fill.add("tls.reset " * 3, "x.com", T0 + 30 * DAY // 10, asn=64502, agent="agent-c")
    later, incident = blocking(storage)
    assert incident.asns == (64500, 64501)
    assert incident.techniques == ("dns.nxdomain", "tls.reset")
    assert [n.cc for n in incident.networks] == ["PK", "IN"]
    assert (incident.start_ms, incident.last_seen_ms, incident.agents) == (T0, T0 + 2 * W, 2)
    assert later.asns == (64502,)
    (one,) = blocking(storage, asn=64501)
    assert (one.asns, one.counts) == ((64501,), {"dns.nxdomain": 4})
    assert blocking(storage, domain="dawn.com") == []


def test_the_unknown_network_is_asn_0(storage: Storage) -> None:
    Filler(storage).add("tls.reset " * 3, "x.com", T0, asn=None, cc=None)
    (incident,) = blocking(storage, asn=0)
    assert (incident.asns, incident.networks[0].cc, incident.agents) == ((0,), None, 1)


def test_an_incident_in_the_first_window_looked_at_says_it_may_be_older(storage: Storage) -> None:
    Filler(storage).add("tls.reset " * 3, "x.com", T0)
    (incident,) = [i for i in detect(storage, T0 + HOUR, T0 + DAY) if i.kind == BLOCKING]
    assert incident.start_clipped
    assert incident.start_ms == T0  # whole windows


def test_counts_match_the_measurements_table(storage: Storage) -> None:
    fill = Filler(storage)
    for day in range(3):
        fill.add("tls.reset tls.reset tls.reset ok offline", "x.com", T0 + day * DAY)
        fill.add("ok ok ok tls.reset", "dawn.com", T0 + day * DAY)
    (incident,) = blocking(storage)
    m = measurements.c
    query = (
        select(m.verdict, func.count())
        .where(m.domain == "x.com", m.measured_ms >= incident.start_ms)
        .where(m.measured_ms < incident.last_seen_ms)
        .group_by(m.verdict)
    )
    with storage.engine.connect() as conn:
        assert incident.counts == dict(Counter({v: int(n) for v, n in conn.execute(query)}))


def test_offline_checks_are_an_outage_incident_with_agent_counts(storage: Storage) -> None:
    fill = Filler(storage)
    fill.checks("agent-a", "++---+", T0)
    fill.checks("agent-b", "++-++", T0, asn=64501)  # one offline check: under the threshold
    found = detect(storage, T0 - DAY, T0 + DAY)
    (outage,) = found
    assert outage.kind == OUTAGE
    assert outage.domain is None
    assert (outage.start_ms, outage.end_ms) == (T0 + 2 * 300_000, T0 + 5 * 300_000)
    assert (outage.techniques, outage.counts, outage.agents) == (("offline",), {"offline": 3}, 1)
    assert outage.asns == (64500,)
    assert "agent-a" not in str(outage.as_json())
    assert detect(storage, T0 - DAY, T0 + DAY, domain="x.com") == []
    assert len(detect(storage, T0 - DAY, T0 + DAY, Thresholds(outage_min_checks=1))) == 2
    assert detect(storage, T0 - DAY, T0 + DAY, Thresholds(outage_min_agents=2)) == []
    # The caller's own outage events, read once (as the dashboard's overview does).
    events = storage.connectivity_checks(since_ms=T0 - DAY, until_ms=T0 + DAY)
    given = find_outages(events, since_ms=T0 - DAY, until_ms=T0 + DAY)
    assert detect(storage, T0 - DAY, T0 + DAY, outages=given) == found
    assert detect(storage, T0 - DAY, T0 + DAY, outages=[]) == []


def test_the_json_view_names_networks_and_counts_never_agents(storage: Storage) -> None:
    Filler(storage).add("tls.reset " * 3, "x.com", T0, agent="volunteer-7")
    (incident,) = blocking(storage)
    view = incident.as_json()
    assert view["kind"] == "blocking"
    assert view["ongoing"] is True
    assert view["networks"][0]["asn"] == 64500
    assert (view["measurements"], view["blocking"], view["agents"]) == (3, 3, 1)
    assert "volunteer-7" not in str(view)


@pytest.mark.parametrize(
    "bad",
    [
        {"window_hours": 0},
        {"window_hours": 169},
        {"min_share": 0.0},
        {"min_share": float("nan")},
        {"min_share": 1.5},
        {"min_blocking": 0},
        {"min_agents": 0},
    ],
)
def test_thresholds_that_cannot_work_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"."):
        Thresholds(**bad)  # type: ignore[arg-type]
