"""The throttle verdict (``agent.verdict.throttle``): a name held at a rate is ``throttled``, with
its limit, direction and trigger; a slow, noisy or lossy link that slows every name alike, or
transfers too fast to be held at any rate, never are; refusals and failures are inconclusive."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.observations import ThrottleObservation, Transfer
from agent.verdict.throttle import FACTOR, decide_throttle, goodput_bps

WINDOW_MS = 1200
HELD_US = 1_150_000  # a transfer still going at the end of its window
SKIP = 4096


def transfer(
    kbps: float, *, up: bool = False, trigger: bool = False, us: int = HELD_US
) -> Transfer:
    """A transfer whose goodput over its window is ``kbps``."""
    moved = SKIP + round(kbps * 1000 / 8 * us / 1e6)
    return Transfer(up, trigger, 1.0, 2.0, 3.0, moved, SKIP, us, us + 5000, 200, None)


def observe(
    down: tuple[list[float], list[float]],
    up: tuple[list[float], list[float]] | None = None,
    trigger: str = "sni",
    us: int = HELD_US,
) -> ThrottleObservation:
    """Rounds with these trigger and benign goodputs (kbit/s), down and up."""
    up = up if up is not None else down
    transfers = []
    for direction, (slow, fast) in ((False, down), (True, up)):
        transfers += [transfer(k, up=direction, trigger=True, us=us) for k in slow]
        transfers += [transfer(k, up=direction, trigger=False, us=us) for k in fast]
    return ThrottleObservation(
        trigger, "x.com", "example.com", "192.0.2.1", 443, tuple(transfers), None, WINDOW_MS
    )


CLEAN_LINK = [9000.0, 11000.0, 10000.0]


def test_a_name_held_at_150_kbits_both_ways_is_throttled_with_its_limit() -> None:
    held = [148.0, 151.0, 150.0]
    verdict = decide_throttle(observe((held, CLEAN_LINK)))
    assert verdict.verdict == "throttled"
    evidence = verdict.evidence
    assert evidence["trigger"] == "sni"
    assert evidence["direction"] == "both"
    assert evidence["limit_kbps"] == 150
    assert evidence["up_limit_kbps"] == 150
    assert evidence["benign_kbps"] == 10000
    assert evidence["ratio"] == round(10000 / 150, 1)


def test_the_direction_says_which_way_the_name_is_held() -> None:
    held = [300.0, 290.0, 295.0]
    down_only = decide_throttle(observe((held, CLEAN_LINK), (CLEAN_LINK, CLEAN_LINK), "host"))
    assert (down_only.verdict, down_only.evidence["direction"]) == ("throttled", "down")
    assert down_only.evidence["trigger"] == "host"
    up_only = decide_throttle(observe((CLEAN_LINK, CLEAN_LINK), (held, CLEAN_LINK)))
    assert (up_only.verdict, up_only.evidence["direction"]) == ("throttled", "up")
    assert up_only.evidence["limit_kbps"] == 295


def test_a_whole_link_that_is_slow_slows_every_name_alike_and_is_ok() -> None:
    slow = [1990.0, 2010.0, 1950.0]
    verdict = decide_throttle(observe((slow, [2000.0, 1980.0, 2020.0])))
    assert verdict.verdict == "ok"
    assert verdict.evidence["trigger_kbps"] == 1990


def test_one_fast_trigger_round_is_not_consistently_slow() -> None:
    verdict = decide_throttle(observe(([150.0, 150.0, 12000.0], CLEAN_LINK)))
    assert verdict.verdict == "ok"


def test_a_ratio_below_the_factor_is_not_throttling() -> None:
    fast = [1000.0, 1000.0, 1000.0]
    slow = [1000 / FACTOR * 1.1] * 3
    assert decide_throttle(observe((slow, fast))).verdict == "ok"


def test_transfers_that_finish_in_milliseconds_were_held_at_no_rate() -> None:
    """On a fast link every transfer ends in a few reads; whatever the order of their few
    milliseconds, nothing held them (the probe's loopback run showed ratios of 20)."""
    verdict = decide_throttle(observe(([300.0] * 3, [6000.0] * 3), us=400))
    assert verdict.verdict == "ok"


def test_a_transfer_cut_short_of_its_size_was_held_whatever_its_window() -> None:
    """A held upload whose last bytes came early (a stall): it still moved less than it asked."""
    obs = observe(([150.0] * 3, CLEAN_LINK), us=300_000)
    sized = dataclasses.replace(obs, down_size=10**6, up_size=10**6)
    assert decide_throttle(obs).verdict == "ok"  # no size known: a 0.3 s window is too short
    assert decide_throttle(sized).verdict == "throttled"
    # A transfer that moved all it asked for, fast, was held at nothing.
    whole = dataclasses.replace(obs, down_size=1000, up_size=1000)
    assert decide_throttle(whole).verdict == "ok"


@settings(max_examples=300, deadline=None)
@given(
    spread=st.floats(min_value=1.0, max_value=FACTOR * 0.99),
    base=st.floats(min_value=50.0, max_value=100_000.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_noise_within_the_factor_never_gives_throttled(
    spread: float, base: float, seed: int
) -> None:
    """A noisy link: every transfer's goodput anywhere within ``spread`` of the others, in any
    order (trigger rounds all slowest included), is never throttling."""
    rng = random.Random(seed)

    def rates() -> list[float]:
        return [base * rng.uniform(1.0, spread) for _ in range(3)]

    slow, fast = sorted(rates()), sorted(rates())
    # The worst case for the rule: every trigger round below every benign one.
    slow = [min(slow)] * 3
    fast = [max(fast)] * 3
    assert decide_throttle(observe((slow, fast), (rates(), rates()))).verdict != "throttled"


def test_a_far_end_that_refuses_is_inconclusive_not_ok() -> None:
    obs = observe(([150.0] * 3, CLEAN_LINK))
    refused = Transfer(False, True, 1.0, None, None, 0, 0, 0, 0, 429, None)
    obs = ThrottleObservation(
        "sni", "x.com", "example.com", "192.0.2.1", 443, (refused, *obs.transfers), None, WINDOW_MS
    )
    verdict = decide_throttle(obs)
    assert verdict.verdict == "inconclusive"
    assert verdict.evidence == {"reason": "far end refused", "status": 429}


def test_no_far_end_is_inconclusive_with_the_failure() -> None:
    obs = ThrottleObservation("sni", "x.com", "example.com", failure="farend_http_404")
    verdict = decide_throttle(obs)
    assert verdict.verdict == "inconclusive"
    assert verdict.evidence["failure"] == "farend_http_404"


def test_trigger_transfers_that_fail_are_blocking_not_throttling() -> None:
    reset = Transfer(False, True, 1.0, None, None, 0, 0, 0, 0, None, "connection_reset")
    benign = [transfer(k) for k in CLEAN_LINK] + [transfer(k, up=True) for k in CLEAN_LINK]
    obs = ThrottleObservation(
        "sni", "x.com", "example.com", "192.0.2.1", 443, (reset,) * 6 + tuple(benign), None, 1200
    )
    verdict = decide_throttle(obs)
    assert verdict.verdict == "inconclusive"
    assert verdict.evidence["reason"] == "trigger transfers failed"
    assert verdict.evidence["failure"] == "connection_reset"


def test_goodput_counts_the_window_after_the_first_read() -> None:
    t = Transfer(False, True, 1.0, None, 5.0, 4096 + 150_000, 4096, 1_000_000, 1_100_000, 200, None)
    assert goodput_bps(t) == 1_200_000
    short = Transfer(False, False, 1.0, None, 5.0, 100_000, 65536, 300, 800_000, 200, None)
    assert goodput_bps(short) == 1_000_000  # too short a window: the whole request
    failed = Transfer(False, False, 1.0, None, None, 0, 0, 0, 0, None, "generic_timeout_error")
    assert goodput_bps(failed) is None
