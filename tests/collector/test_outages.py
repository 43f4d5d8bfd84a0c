"""Outage events from connectivity checks (collector.outages): table tests of the per-agent
runs and silences and of the grouping by network, and a property over random series."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.outages import (
    OFFLINE,
    SILENT,
    SILENT_TAIL_MS,
    Check,
    Outage,
    agent_outages,
    find_outages,
)

MIN = 60_000
STEP = 5 * MIN  # the check interval


def series(agent: str, states: str, *, start: int = 0, asn: int = 64500, cc: str = "PK",
           gaps: dict[int, int] | None = None) -> list[Check]:  # fmt: skip
    """One check per character ("+" online, "-" offline) every STEP; ``gaps`` adds extra
    time before the check at that index."""
    out, ms = [], start
    for index, state in enumerate(states):
        ms += (gaps or {}).get(index, 0)
        out.append(Check(agent, ms, state == "+", asn, cc))
        ms += STEP
    return out


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ("++++", []),
        # start: the first offline check; end: the first online one after; bounds on either side
        ("++--+", [(OFFLINE, 2 * STEP, 4 * STEP, 1 * STEP, 2)]),
        ("--+", [(OFFLINE, 0, 2 * STEP, None, 2)]),
        ("+++--", [(OFFLINE, 3 * STEP, None, 2 * STEP, 2)]),  # ongoing
        (
            "+-+-+",
            [(OFFLINE, 1 * STEP, 2 * STEP, 0, 1), (OFFLINE, 3 * STEP, 4 * STEP, 2 * STEP, 1)],
        ),
    ],
)
def test_offline_runs(states: str, expected: list[tuple[object, ...]]) -> None:
    found = agent_outages(series("a", states))
    assert [(o.kind, o.start_ms, o.end_ms, o.last_online_ms, o.checks) for o in found] == expected
    assert all(o.first_online_ms == o.end_ms and o.agents == ("a",) for o in found)


def test_a_gap_between_online_checks_is_a_silent_outage() -> None:
    checks = series("a", "++++++", gaps={3: 10 * STEP})
    assert agent_outages(checks) == [
        Outage(SILENT, 64500, "PK", 2 * STEP, 13 * STEP, 2 * STEP, ("a",), 0)
    ]
    # Under three times the median spacing is jitter, not silence.
    assert agent_outages(series("a", "++++++", gaps={3: 2 * STEP - 1})) == []


def test_a_gap_next_to_offline_checks_belongs_to_the_offline_run() -> None:
    found = agent_outages(series("a", "+++--++", gaps={3: 10 * STEP, 4: 10 * STEP}))
    assert [(o.kind, o.start_ms, o.end_ms, o.last_online_ms) for o in found] == [
        (OFFLINE, 13 * STEP, 25 * STEP, 2 * STEP)
    ]


def test_trailing_silence_is_ongoing_only_past_the_tail_allowance() -> None:
    checks = series("a", "++++")
    last = checks[-1].ms
    assert agent_outages(checks, now_ms=last + SILENT_TAIL_MS) == []
    assert agent_outages(checks, now_ms=last + SILENT_TAIL_MS + 1) == [
        Outage(SILENT, 64500, "PK", last, None, last, ("a",), 0)
    ]
    assert agent_outages(series("a", "+"), now_ms=last + 10 * SILENT_TAIL_MS) == []  # no rhythm


def test_grouping_by_network_merges_overlaps_and_lists_agents() -> None:
    a = series("a", "++---++++")  # offline 2..5
    b = series("b", "+++---+++", start=30_000)  # offline 3..6 (+30 s): overlaps a
    c = series("c", "++---++++", asn=64501)  # the same times, another network
    d = series("d", "+++++++-+")  # 7..8 in a network, after a and b ended: apart
    found = find_outages(a + b + c + d)
    assert [(o.asn, o.agents, o.start_ms, o.end_ms, o.checks) for o in found] == [
        (64500, ("d",), 7 * STEP, 8 * STEP, 1),
        (64500, ("a", "b"), 2 * STEP, 6 * STEP + 30_000, 6),
        (64501, ("c",), 2 * STEP, 5 * STEP, 3),
    ]
    assert found[1].last_online_ms == STEP  # the earliest agent's last online check


def test_an_ongoing_outage_keeps_the_merged_event_open_and_windows_filter() -> None:
    found = find_outages(series("a", "++--+") + series("b", "+++---"))
    assert [(o.agents, o.start_ms, o.end_ms) for o in found] == [(("a", "b"), 2 * STEP, None)]
    ended = series("a", "+--+++")
    assert find_outages(ended, since_ms=3 * STEP) == []  # ended at 3 * STEP: before
    assert len(find_outages(ended, since_ms=3 * STEP - 1)) == 1
    assert find_outages(ended, until_ms=STEP) == []  # started at STEP: not before until
    assert len(find_outages(ended, until_ms=STEP + 1)) == 1


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.lists(st.booleans(), max_size=40))
def test_every_offline_check_is_in_exactly_one_offline_outage(
    first: list[bool], second: list[bool]
) -> None:
    checks = [Check("a", i * STEP, s, 1, "PK") for i, s in enumerate(first)]
    checks += [Check("b", i * STEP + 1, s, 1, "PK") for i, s in enumerate(second)]
    found = [o for o in find_outages(checks) if o.kind == OFFLINE]
    assert sum(o.checks for o in found) == sum(not c.online for c in checks)
    for check in checks:
        if not check.online:
            covering = [
                o for o in found
                if o.start_ms <= check.ms and (o.end_ms is None or check.ms < o.end_ms)
            ]  # fmt: skip
            assert len(covering) == 1
            assert check.agent_id in covering[0].agents
        else:  # an online check is never inside an offline outage of its own agent
            assert not any(
                check.agent_id in o.agents and len(o.agents) == 1
                and o.start_ms < check.ms and (o.end_ms is None or check.ms < o.end_ms)
                for o in found
            )  # fmt: skip
    for o in found:
        assert o.end_ms is None or o.start_ms < o.end_ms


def test_a_series_cut_at_until_is_not_silent_now() -> None:
    checks = series("a", "++++++")
    now = checks[-1].ms + 10 * SILENT_TAIL_MS
    assert [o.kind for o in find_outages(checks, now_ms=now)] == [SILENT]
    # The storage hands over the first check at or after ``until``: the agent spoke later.
    assert find_outages(checks, now_ms=now, until_ms=checks[-1].ms) == []
