"""Collector control: the cache in front of control measurements, what it may measure, and
the control request's parsing.

The cache tests use a fake measure function (a counter and an asyncio.Event): the cache is
pure logic; tests/security/test_ssrf.py and the lab tests run the real control.
"""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from agent.model.addresses import parse_networks
from agent.model.measurement import Target
from collector.control import ControlCache, control_target, measurable

# -- the control cache -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeMeasure:
    """Counts calls; each call waits for ``release`` so tests can hold a measurement open."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.running = 0
        self.peak = 0

    def __call__(self, key: str) -> asyncio.Future[str]:
        return asyncio.ensure_future(self._run(key))

    async def _run(self, key: str) -> str:
        self.calls.append(key)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return f"control of {key} #{len(self.calls)}"


def make_cache(
    clock: FakeClock, *, ttl: float = 300, entries: int = 100, concurrent: int = 64
) -> ControlCache[str, str]:
    return ControlCache(ttl=ttl, max_entries=entries, max_concurrent=concurrent, clock=clock)


@pytest.mark.asyncio
async def test_cache_hit_then_ttl_expiry() -> None:
    clock, measure = FakeClock(), FakeMeasure()
    cache = make_cache(clock, ttl=300)
    assert await cache.get("a", lambda: measure("a")) == ("control of a #1", "miss")
    clock.now += 299
    assert await cache.get("a", lambda: measure("a")) == ("control of a #1", "hit")
    clock.now += 1
    assert await cache.get("a", lambda: measure("a")) == ("control of a #2", "miss")
    assert measure.calls == ["a", "a"]


@pytest.mark.asyncio
async def test_ttl_zero_caches_nothing() -> None:
    clock, measure = FakeClock(), FakeMeasure()
    cache = make_cache(clock, ttl=0)
    for _ in range(3):
        assert (await cache.get("a", lambda: measure("a")))[1] == "miss"
    assert len(measure.calls) == 3
    assert len(cache) == 0


@pytest.mark.asyncio
async def test_lru_bound_evicts_least_recently_used() -> None:
    clock, measure = FakeClock(), FakeMeasure()
    cache = make_cache(clock, entries=2)
    await cache.get("a", lambda: measure("a"))
    await cache.get("b", lambda: measure("b"))
    assert (await cache.get("a", lambda: measure("a")))[1] == "hit"  # a is now the most recent
    await cache.get("c", lambda: measure("c"))  # evicts b
    assert len(cache) == 2
    assert (await cache.get("a", lambda: measure("a")))[1] == "hit"
    assert (await cache.get("c", lambda: measure("c")))[1] == "hit"
    assert (await cache.get("b", lambda: measure("b")))[1] == "miss"
    assert measure.calls == ["a", "b", "c", "b"]


@pytest.mark.asyncio
async def test_single_flight_shares_one_measurement() -> None:
    clock, measure = FakeClock(), FakeMeasure(hold=True)
    cache = make_cache(clock)
    waiters = [asyncio.ensure_future(cache.get("a", lambda: measure("a"))) for _ in range(10)]
    other = asyncio.ensure_future(cache.get("b", lambda: measure("b")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert measure.running == 2  # one measurement per key, however many wait for it
    assert not any(w.done() for w in waiters)
    measure.release.set()
    results = await asyncio.gather(*waiters)
    assert {value for value, _ in results} == {"control of a #2"}  # b's had started too
    assert sorted(status for _, status in results) == ["miss"] + ["shared"] * 9
    assert (await other)[1] == "miss"
    assert measure.calls == ["a", "b"]
    # Finished runs are not joined any more: once the answers expire, both are measured again.
    clock.now += 300
    assert (await cache.get("a", lambda: measure("a")))[1] == "miss"
    assert (await cache.get("b", lambda: measure("b")))[1] == "miss"
    assert measure.calls == ["a", "b", "a", "b"]


@pytest.mark.asyncio
async def test_a_cancelled_waiter_does_not_cancel_the_shared_measurement() -> None:
    clock, measure = FakeClock(), FakeMeasure(hold=True)
    cache = make_cache(clock)
    first = asyncio.ensure_future(cache.get("a", lambda: measure("a")))
    second = asyncio.ensure_future(cache.get("a", lambda: measure("a")))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    measure.release.set()
    assert await second == ("control of a #1", "shared")
    assert (await cache.get("a", lambda: measure("a")))[1] == "hit"


@pytest.mark.asyncio
async def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    gate = asyncio.Event()
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("probe bug")

    waiters = [asyncio.ensure_future(cache.get("a", broken)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert calls == 1
    assert len(cache) == 0
    measure = FakeMeasure()
    assert (await cache.get("a", lambda: measure("a")))[1] == "miss"


@pytest.mark.asyncio
async def test_concurrency_is_bounded() -> None:
    clock, measure = FakeClock(), FakeMeasure(hold=True)
    cache = make_cache(clock, concurrent=3)
    keys = [f"k{i}" for i in range(10)]
    tasks = [asyncio.ensure_future(cache.get(k, functools.partial(measure, k))) for k in keys]
    for _ in range(5):
        await asyncio.sleep(0)
    assert measure.running == 3
    measure.release.set()
    await asyncio.gather(*tasks)
    assert measure.peak == 3
    assert len(measure.calls) == 10


@pytest.mark.asyncio
async def test_close_cancels_in_flight() -> None:
    clock, measure = FakeClock(), FakeMeasure(hold=True)
    cache = make_cache(clock)
    waiter = asyncio.ensure_future(cache.get("a", lambda: measure("a")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert measure.running == 1
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert measure.running == 0
    # The cancelled run is forgotten: the next request measures afresh rather than join it.
    measure.release.set()
    assert await cache.get("a", lambda: measure("a")) == ("control of a #2", "miss")


@pytest.mark.asyncio
async def test_the_last_waiter_leaving_cancels_the_measurement() -> None:
    clock, measure = FakeClock(), FakeMeasure(hold=True)
    cache = make_cache(clock)
    waiters = [asyncio.ensure_future(cache.get("a", lambda: measure("a"))) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert measure.running == 1
    for waiter in waiters[:2]:
        waiter.cancel()
        await asyncio.sleep(0)
    assert measure.running == 1  # one request still waits for it
    waiters[2].cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert measure.running == 0
    assert all(w.cancelled() for w in waiters)
    # Abandoned, it is neither cached nor joined: the next request measures afresh.
    measure.release.set()
    assert await cache.get("a", lambda: measure("a")) == ("control of a #2", "miss")


@pytest.mark.asyncio
async def test_the_deadline_ends_a_measurement_for_every_waiter() -> None:
    cache: ControlCache[str, str] = ControlCache(
        ttl=300, max_entries=10, max_concurrent=4, deadline=0.05
    )
    measure = FakeMeasure(hold=True)
    waiters = [asyncio.ensure_future(cache.get("a", lambda: measure("a"))) for _ in range(2)]
    outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    assert measure.running == 0
    assert len(cache) == 0
    measure.release.set()
    assert (await cache.get("a", lambda: measure("a")))[1] == "miss"


LAB = parse_networks(["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("address", "public", "in_lab"),
    [
        ("8.8.8.8", True, True),
        ("2606:4700::1111", True, True),
        ("192.0.2.10", False, True),
        ("198.51.100.10", False, True),
        ("2001:db8::1", False, True),
        ("10.10.34.34", False, False),
        ("127.0.0.1", False, False),
        ("169.254.169.254", False, False),
        ("100.64.1.2", False, False),
        ("0.0.0.0", False, False),
        ("::1", False, False),
        ("::ffff:127.0.0.1", False, False),
        ("64:ff9b::7f00:1", False, False),
        ("fe80::1", False, False),
        ("224.0.0.1", False, False),
    ],
)
def test_measurable(address: str, public: bool, in_lab: bool) -> None:
    assert measurable(address) is public
    assert measurable(address, LAB) is in_lab


@pytest.mark.parametrize(
    ("url", "measured"),
    [
        ("https://x.com/", "https://x.com/"),
        ("https://x.com/a?b=1", "https://x.com/a"),
        ("http://x.com:8080/p/q?r#frag", "http://x.com:8080/p/q"),
        ("x.com", "https://x.com/"),
        ("https://x.com/?", "https://x.com/"),
    ],
)
def test_the_control_measures_without_the_query(url: str, measured: str) -> None:
    target = control_target(Target.parse(url))
    assert target.url == measured
    assert "?" not in target.path


# -- the control request -------------------------------------------------------------


def test_parse_control_request() -> None:
    from collector.errors import ApiError
    from collector.web.handlers import parse_control_request

    good = {"url": "x.com", "addresses": ["192.0.2.18", "10.10.34.34", "192.0.2.9", "192.0.2.18"]}
    target, addresses = parse_control_request(good, LAB)
    assert target.url == "https://x.com/"
    assert addresses == ("192.0.2.18", "192.0.2.9")  # sorted, de-duplicated, no private IPs
    assert parse_control_request(good, ())[1] == ()  # documentation ranges: only if allowed
    target, _ = parse_control_request({"url": "http://8.8.8.8:81/x?y"}, ())
    assert target.url == "http://8.8.8.8:81/x"
    bad = [
        ([], "JSON object"),
        ({}, "'url' must be a string"),
        ({"url": "gopher://x"}, "only http and https"),
        ({"url": "x.com", "addresses": "192.0.2.1"}, "list of IP"),
        ({"url": "x.com", "addresses": [1]}, "list of IP"),
        ({"url": "x.com", "addresses": ["192.0.2.300"]}, "not an IP address"),
        ({"url": "x.com", "addresses": ["192.0.2.1"] * 17}, "at most 16"),
        ({"url": "http://127.0.0.1:8080/"}, "may not be measured"),
        ({"url": "http://[::ffff:127.0.0.1]/"}, "may not be measured"),
        ({"url": "http://0.0.0.0/"}, "may not be measured"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "may not be measured"),
    ]
    for body, message in bad:
        with pytest.raises(ApiError, match=message) as info:
            parse_control_request(json.loads(json.dumps(body)), LAB)
        assert info.value.status == 400
