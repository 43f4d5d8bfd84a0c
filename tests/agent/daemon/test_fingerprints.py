"""Agent daemon: the collector's fingerprints, fetched, cached in the state directory, kept
across a restart and used while the collector is unreachable; local files win."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from agent.daemon.config import load_config
from agent.daemon.enrollment import enroll
from agent.daemon.fingerprints import (
    FINGERPRINTS_CACHE,
    CollectorFingerprints,
    read_fingerprints_cache,
)
from agent.daemon.full import run_daemon
from agent.daemon.spool import Spool
from agent.fingerprints import load
from agent.model.measurement import Target
from agent.wire.json import measurement_json
from agent.wire.record import decode_measurement
from collector.config import Settings
from collector.storage.queries import MeasurementFilter
from collector.web.keys import STORAGE
from tests.agent.daemon.loopback import (
    collector,
    daemon_until,
    loopback_resolver,
    token,
    web_site,
    write_config,
)
from tests.collector.app_client import running
from tests.shared_data import shared_file

# The loopback site's page (tests.agent.daemon.loopback.web_site), as a blockpage.
ORDINARY = (
    "name,scope,location_found,pattern_type,pattern\r\n"
    "test.ordinary,isp,body,contains,a perfectly ordinary page\r\n"
)
SEEN = '"fingerprint":"test.ordinary"'


def _ooni() -> tuple[Path, ...]:
    return (shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv"))


async def _nothing(nbytes: int) -> None:
    pass


def _lists(state_dir: Path, url: str) -> CollectorFingerprints:
    return CollectorFingerprints(
        read_fingerprints_cache(state_dir), collector_urls=[url], proxy=None, state_dir=state_dir
    )


@pytest.mark.asyncio
async def test_fetched_cached_privately_revalidated_and_kept_when_unreachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", fingerprints=tuple(map(str, _ooni())))
    caplog.set_level(logging.INFO, logger="netsonde.agent")
    async with running(settings) as client, aiohttp.ClientSession() as session:
        url = str(client.make_url("")).rstrip("/")
        lists = _lists(state, url)
        assert lists.cached is None  # and so no current set
        assert await lists.refresh(session, _nothing) is None
        assert lists.current is not None
        assert lists.current.fingerprints == load(_ooni()).fingerprints
        path = state / FINGERPRINTS_CACHE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        written = path.stat().st_mtime_ns
        # Unchanged on the collector: a 304, and the cache is not written again.
        assert await lists.refresh(session, _nothing) is None
        assert path.stat().st_mtime_ns == written

    # A restart with the collector gone: the cached set, parsed again, is the one in use.
    restarted = _lists(state, url)
    assert restarted.cached is not None
    assert restarted.current is not None
    assert restarted.cached.etag == json.loads(path.read_text())["etag"]
    assert restarted.current.fingerprints == load(_ooni()).fingerprints
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            failure = await restarted.refresh(session, _nothing)
            assert failure is not None
            assert failure.startswith(url)
    assert restarted.current.fingerprints == load(_ooni()).fingerprints
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said once, not at every attempt
    assert "keeping the 1" in warnings[0]
    assert "cached" in warnings[0]


@pytest.mark.parametrize(
    "cache",
    ["not json", '{"etag": "x"}', '{"csv": 3}', '{"csv": "url,category_code\\r\\n"}', "[]"],
)
def test_an_unusable_cache_is_fetched_again(
    tmp_path: Path, cache: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FINGERPRINTS_CACHE).write_text(cache)
    assert read_fingerprints_cache(tmp_path) is None
    assert "fetching the fingerprints again" in caplog.text


@pytest.mark.asyncio
async def test_an_empty_set_means_none(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        lists = _lists(tmp_path, str(client.make_url("")).rstrip("/"))
        async with aiohttp.ClientSession() as session:
            assert await lists.refresh(session, _nothing) is None
    assert lists.cached is not None
    assert lists.current is None


def _json(record: bytes) -> str:
    m = decode_measurement(record)
    return measurement_json(Target.parse(m.url), m)


def _named(records: list[bytes]) -> dict[str, bool]:
    """Whether each measured URL's page was named by the fingerprint."""
    return {decode_measurement(r).url: SEEN in _json(r) for r in records}


def _two_acked(status: dict[str, Any]) -> bool:
    return bool(status.get("totals", {}).get("acked", 0) >= 2)  # no totals before a spool


def _stored(server: TestServer) -> list[bytes]:
    page, _ = server.app[STORAGE].measurements_page(MeasurementFilter(), 100)
    return [stored.record for stored in page]


@pytest.mark.asyncio
async def test_the_daemon_measures_with_the_collectors_set_and_then_its_cache(
    tmp_path: Path,
) -> None:
    """No fingerprint files on the agent: the collector's set names the page, and after a
    restart with the collector gone, the cached set still does."""
    served = tmp_path / "served.csv"
    served.write_text(ORDINARY)
    async with loopback_resolver(tmp_path) as resolv_conf, web_site() as port:
        async with collector(tmp_path, resolv_conf, fingerprints=(served,)) as server:
            url = str(server.make_url("")).rstrip("/")
            config = load_config(write_config(tmp_path, url, port))
            assert config.collector_fingerprints
            assert config.refreshes_from_collector
            await enroll(url, token(server), config.state_dir)
            stop = asyncio.Event()
            daemon = asyncio.create_task(run_daemon(config, stop=stop, resolv_conf=resolv_conf))
            deadline = time.monotonic() + 20
            while len(_stored(server)) < 2 and time.monotonic() < deadline:
                assert not daemon.done(), daemon
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.wait_for(daemon, 10)
            # The page is named; the site's 404 at /other is not.
            expected = {f"http://site.test:{port}/": True, f"http://site.test:{port}/other": False}
            assert _named(_stored(server)) == expected
        assert "test.ordinary" in (config.state_dir / FINGERPRINTS_CACHE).read_text()

        await daemon_until(config, resolv_conf, lambda s: s["totals"]["spooled"] >= 4, 20)
    with Spool.open(config.state_dir / "spool.db", max_bytes=10**6) as spool:
        assert _named([r.record for r in spool.peek(100)]) == expected


@pytest.mark.asyncio
async def test_local_files_win_and_the_collector_is_not_asked(tmp_path: Path) -> None:
    served = tmp_path / "served.csv"
    served.write_text(ORDINARY)
    local = tmp_path / "local.csv"
    local.write_text(ORDINARY.replace("test.ordinary", "test.local"))
    async with (
        loopback_resolver(tmp_path) as resolv_conf,
        web_site() as port,
        collector(tmp_path, resolv_conf, fingerprints=(served,)) as server,
    ):
        url = str(server.make_url("")).rstrip("/")
        path = write_config(tmp_path, url, port)
        path.write_text(path.read_text() + 'fingerprints = ["local.csv"]\n')
        config = load_config(path)
        assert not config.collector_fingerprints
        assert not config.refreshes_from_collector
        await enroll(url, token(server), config.state_dir)
        await daemon_until(config, resolv_conf, _two_acked, 20)
        texts = [_json(record) for record in _stored(server)]
    assert len(texts) == 2
    assert sum('"fingerprint":"test.local"' in text for text in texts) == 1
    assert not any(SEEN in text for text in texts)
    assert not (config.state_dir / FINGERPRINTS_CACHE).exists()
