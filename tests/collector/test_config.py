"""Unit tests: the collector's settings validation, control cache and request parsing.

The cache tests use a fake measure function (a counter and an asyncio.Event):
the cache is pure logic, and the lab test runs the real control end to end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main
from collector.config import ConfigError, Settings, make_settings, parse_listen
from collector.control import ControlCache, measurable
from tests import REPO

# -- settings -------------------------------------------------------------------


def test_defaults_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = make_settings()
    assert settings == Settings()
    assert settings.db_url == "sqlite:///netsonde.db"
    assert settings.control_ttl == 300
    assert settings.url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.10:8080", ("198.51.100.10", 8080)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:8443", ("::1", 8443)),
        ("localhost:65535", ("localhost", 65535)),
        # A name by the one rule of agent.model.hostnames: underscores too, as looked up.
        ("collector_1.lan:80", ("collector_1.lan", 80)),
        ("Collector.LAN.:80", ("collector.lan", 80)),
    ],
)
def test_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "expected HOST:PORT"),
        (":8080", "host is missing"),
        ("127.0.0.1:", "port must be"),
        ("127.0.0.1:0", "port must be"),
        ("127.0.0.1:70000", "port must be"),
        ("127.0.0.1:http", "port must be"),
        ("::1:8080", "expected HOST:PORT"),
        ("[::1]8080", "expected [IPV6]:PORT"),
        ("[nothost]:80", "not an IP address"),
        ("bad_host!:80", "not an IP address or host name"),
        ("-collector:80", "not an IP address or host name"),
    ],
)
def test_listen_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--listen") as info:
        parse_listen(text)
    assert message in str(info.value)


def test_db_urls(tmp_path: Path) -> None:
    assert make_settings(db=f"sqlite:///{tmp_path}/n.db").db_url == f"sqlite:///{tmp_path}/n.db"
    assert make_settings(db="postgresql://netsonde@db.example/netsonde").db_url.startswith(
        "postgresql://"
    )
    problems = {
        "mysql://x/y": "unsupported database",
        "netsonde.db": "unsupported database",
        f"sqlite:///{tmp_path}/missing/n.db": "does not exist",
        "sqlite://host/n.db": "three slashes",
        "sqlite:///": "no database file",
        "postgresql:///netsonde": "needs a host",
    }
    for url, message in problems.items():
        with pytest.raises(ConfigError, match=message):
            make_settings(db=url)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any directory")
def test_db_directory_must_be_writable(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            make_settings(db=f"sqlite:///{tmp_path}/n.db")
    finally:
        tmp_path.chmod(0o755)


def test_other_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    settings = make_settings(
        ca_file=str(ca),
        resolvers=["198.51.100.8", " 2001:db8::53", "198.51.100.8"],
        benign_sni="Example.COM.",
        control_ttl=0,
        timeout=2.5,
        ingest_rate=0.5,
        ingest_burst=3,
    )
    assert (settings.ingest_rate, settings.ingest_burst) == (0.5, 3)
    assert settings.ca_file == str(ca)
    assert settings.resolvers == ("198.51.100.8", "2001:db8::53")
    assert settings.benign_sni == "example.com"
    assert (settings.control_ttl, settings.timeout) == (0, 2.5)
    problems = [
        ({"ca_file": str(tmp_path / "nope.pem")}, "--ca-file"),
        ({"resolvers": ["dns.google"]}, "--resolver"),
        ({"benign_sni": "localhost"}, "--benign-sni"),
        ({"benign_sni": "bad name.com"}, "--benign-sni"),
        ({"control_ttl": -1.0}, "--control-ttl"),
        ({"control_ttl": float("nan")}, "--control-ttl"),
        ({"timeout": 0.0}, "--timeout"),
        ({"timeout": float("inf")}, "--timeout"),
        ({"ingest_rate": 0.0}, "--ingest-rate"),
        ({"ingest_burst": 0}, "--ingest-burst"),
    ]
    for kwargs, option in problems:
        with pytest.raises(ConfigError, match=option):
            make_settings(**kwargs)  # type: ignore[arg-type]


def test_cli_config_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netsonde-collector: error: --listen 'nowhere'")
    assert len(err.strip().splitlines()) == 1


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--control-ttl", "soon"])
    assert info.value.code == 2


def test_help_does_not_import_aiohttp() -> None:
    code = (
        "import sys; from collector.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'aiohttp' not in sys.modules and 'agent.site' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--control-ttl" in done.stdout


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


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("192.0.2.10", True),
        ("198.51.100.10", True),
        ("8.8.8.8", True),
        ("2001:db8::1", True),
        ("10.10.34.34", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.1.2", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
    ],
)
def test_measurable(address: str, allowed: bool) -> None:
    assert measurable(address) is allowed


# -- the control request -------------------------------------------------------------


def test_parse_control_request() -> None:
    from collector.errors import ApiError
    from collector.web.handlers import parse_control_request

    target, addresses = parse_control_request(
        {"url": "x.com", "addresses": ["192.0.2.18", "10.10.34.34", "192.0.2.9", "192.0.2.18"]}
    )
    assert target.url == "https://x.com/"
    assert addresses == ("192.0.2.18", "192.0.2.9")  # sorted, de-duplicated, no private IPs
    bad = [
        ([], "JSON object"),
        ({}, "'url' must be a string"),
        ({"url": "gopher://x"}, "only http and https"),
        ({"url": "x.com", "addresses": "192.0.2.1"}, "list of IP"),
        ({"url": "x.com", "addresses": [1]}, "list of IP"),
        ({"url": "x.com", "addresses": ["192.0.2.300"]}, "not an IP address"),
        ({"url": "x.com", "addresses": ["192.0.2.1"] * 17}, "at most 16"),
    ]
    for body, message in bad:
        with pytest.raises(ApiError, match=message):
            parse_control_request(json.loads(json.dumps(body)))
