"""collector.degradation: each agent's goodput against its own baseline, runs of degraded
samples as periods, and periods in one network merged."""

from __future__ import annotations

from collections.abc import Sequence

from collector.degradation import (
    BASELINE_MS,
    MIN_BASELINE,
    Sample,
    agent_degradations,
    find_degradations,
)

STEP = 30 * 60_000
FAST, SLOW = 40_000_000, 2_000_000


def series(
    rates: Sequence[int], agent: str = "a", asn: int = 64500, start: int = 0
) -> list[Sample]:
    return [Sample(agent, start + i * STEP, bps, asn, "PK") for i, bps in enumerate(rates)]


def test_a_run_of_slow_samples_is_a_period_from_its_first_to_the_next_normal() -> None:
    samples = series([FAST] * 6 + [SLOW] * 3 + [FAST])
    [period] = agent_degradations(samples)
    assert (period.start_ms, period.end_ms, period.last_normal_ms) == (6 * STEP, 9 * STEP, 5 * STEP)
    assert (period.goodput_bps, period.baseline_bps, period.agents) == (SLOW, FAST, ("a",))


def test_no_baseline_no_period_and_one_slow_sample_is_none() -> None:
    # Too few samples before: the first slow one is no degraded sample, and joins the baseline.
    assert agent_degradations(series([FAST] * (MIN_BASELINE - 1) + [SLOW] * 2)) == []
    assert agent_degradations(series([FAST] * 6 + [SLOW] + [FAST] * 3)) == []
    # A sample at a third of the baseline is not "far below" it.
    assert agent_degradations(series([FAST] * 6 + [FAST // 3] * 4)) == []


def test_a_long_degradation_does_not_become_the_baseline() -> None:
    [period] = agent_degradations(series([FAST] * 6 + [SLOW] * 40))
    assert period.end_ms is None
    assert len(period.rates) == 40


def test_the_baseline_is_the_last_week() -> None:
    old = series([FAST] * 6)
    later = series([SLOW // 4] * 6 + [SLOW // 4] * 2, start=BASELINE_MS + 10 * STEP)
    # A week on, the old fast samples no longer count: the slow link is the new normal.
    assert agent_degradations(old + later) == []


def test_periods_of_one_network_merge_and_count_who_was_sampled() -> None:
    a = series([FAST] * 6 + [SLOW] * 3 + [FAST], "a")
    b = series([FAST] * 7 + [SLOW] * 3 + [FAST], "b")
    c = series([FAST] * 12, "c")
    other = series([FAST] * 6 + [SLOW] * 2, "d", asn=64501)
    found = find_degradations([*a, *b, *c, *other])
    assert [(d.asn, d.start_ms, d.end_ms, d.agents, d.sampled) for d in found] == [
        (64500, 6 * STEP, 10 * STEP, ("a", "b"), 3),
        (64501, 6 * STEP, None, ("d",), 1),
    ]
    assert find_degradations([*a, *b], since_ms=11 * STEP) == []
    assert find_degradations([*a, *b], until_ms=6 * STEP) == []
