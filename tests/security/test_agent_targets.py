"""Agent security: the collector's test list cannot send the agent into private networks.

A compromised collector could list loopback, LAN or metadata-service URLs and then read the
page titles its agents publish: a map of its volunteers' home networks. The real daemon
runs here with such a list cached as the collector's (the collector itself is gone, so its
control cannot touch the web server either), and a loopback web server counts who asked for
what: the collector's private targets must get no connection, the operator's own local file
must, and ``testlist.allow_networks`` lets the collector's through again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.config import load_config, parse_config
from agent.daemon.enrollment import enroll
from agent.daemon.measure import run_targets
from agent.daemon.spool import Spool
from agent.daemon.testlist import TESTLIST_CACHE, CachedTestList, CollectorTestList
from agent.model.addresses import TEST_NETWORKS
from agent.model.measurement import Target
from agent.wire.record import decode_measurement
from tests.agent.daemon import loopback

PRIVATE = [
    "http://127.0.0.1/",
    "http://10.1.2.3:8080/admin",
    "http://192.168.1.1/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:192.168.0.1]/",
    "http://100.64.0.1/",
    "http://192.0.2.1/",  # documentation: the lab's internet, routed nowhere else
]
PUBLIC = ["https://example.org/", "http://93.184.215.14/", "http://[2606:4700::1111]/"]


def _listed(urls: list[str], allowed: tuple[object, ...] = ()) -> list[str]:
    cached = CachedTestList("etag", tuple(urls), 0)
    testlist = CollectorTestList(cached, collector_urls=(), proxy=None, state_dir=Path("."))
    return [t.url for t in testlist.targets(allowed)]  # type: ignore[arg-type]


@pytest.mark.asyncio  # CollectorTestList makes an asyncio.Event: it lives on a loop
async def test_the_collectors_non_public_literals_are_dropped() -> None:
    public = [Target.parse(url).url for url in PUBLIC]
    assert _listed(PRIVATE + PUBLIC) == public
    assert _listed(PRIVATE + PUBLIC, TEST_NETWORKS) == ["http://192.0.2.1/", *public]


@pytest.mark.asyncio
async def test_local_files_are_not_filtered_and_names_are_marked_remote(tmp_path: Path) -> None:
    (tmp_path / "local.csv").write_text("url\nhttp://127.0.0.1/\nhttp://10.0.0.1/\n")
    raw = {"collector": {"urls": ["http://127.0.0.1:9"]}, "testlist": {"files": ["local.csv"]}}
    config = parse_config(raw, str(tmp_path / "agent.toml"))
    cached = CachedTestList(None, ("http://10.0.0.1/", "http://10.0.0.2/", "https://a.test/"), 0)
    remote = CollectorTestList(cached, collector_urls=(), proxy=None, state_dir=tmp_path)
    found = [(t.url, r) for t, r in run_targets(config, remote)]
    # The operator's own list wins a URL both name; the collector's private one is gone.
    assert found == [
        ("http://127.0.0.1/", False),
        ("http://10.0.0.1/", False),
        ("https://a.test/", True),
    ]


def _ran(status: dict[str, Any]) -> bool:
    return bool(status.get("meta", {}).get("last_run_ms"))


async def _one_run(tmp_path: Path, remote: list[str], allow: str) -> tuple[list[str], list[str]]:
    """The daemon's first run, with ``remote`` as the collector's cached list; (the paths
    the web server was asked for, the URLs spooled)."""
    hits: list[str] = []
    async with loopback.loopback_resolver(tmp_path) as resolv_conf, loopback.web_site(hits) as port:
        async with loopback.collector(tmp_path, resolv_conf) as server:
            url = str(server.make_url("")).rstrip("/")
            path = loopback.write_config(tmp_path, url, port)
            (tmp_path / "list.csv").write_text(f"url\nhttp://127.0.0.1:{port}/local\n")
            text = path.read_text().replace("from_collector = false", allow)
            path.write_text(text)
            config = load_config(path)
            await enroll(url, loopback.token(server), config.state_dir)
        urls = [u.format(port=port) for u in remote]
        cache = {"etag": "x", "urls": urls, "fetched_ms": int(time.time() * 1000)}
        (config.state_dir / TESTLIST_CACHE).write_text(json.dumps(cache))
        await loopback.daemon_until(config, resolv_conf, _ran, 30)
    with Spool.open(config.state_dir / "spool.db", max_bytes=10**8) as spool:
        spooled = sorted(decode_measurement(r.record).url for r in spool.peek(100))
    return sorted(set(hits)), spooled


LITERALS = ["http://127.0.0.1:{port}/literal", "http://[::ffff:127.0.0.1]:{port}/mapped"]


@pytest.mark.asyncio
async def test_the_daemon_connects_to_no_private_literal_the_collector_lists(
    tmp_path: Path,
) -> None:
    hits, spooled = await _one_run(tmp_path, LITERALS, "from_collector = true")
    assert hits == ["/local"]  # the operator's own target: the web server is reachable
    assert [url.rsplit("/", 1)[1] for url in spooled] == ["local"]  # the others not measured


@pytest.mark.asyncio
async def test_allow_networks_lets_the_collectors_private_targets_through(tmp_path: Path) -> None:
    allow = 'from_collector = true\nallow_networks = ["127.0.0.0/8"]'
    hits, _ = await _one_run(tmp_path, LITERALS[:1], allow)
    assert hits == ["/literal", "/local"]


@pytest.mark.asyncio
async def test_the_daemon_connects_nowhere_private_for_a_name_the_collector_lists(
    tmp_path: Path,
) -> None:
    # site.test resolves to 127.0.0.1 (the loopback resolver): measured, never connected to.
    hits, spooled = await _one_run(tmp_path, ["http://site.test:{port}/named"], "")
    assert hits == ["/local"]
    assert any(url.endswith("/named") for url in spooled)
