"""Collector, enrichment: lookups in tiny databases built here, X-Forwarded-For trust, the
configuration errors, and an upload through the real app that stores ASN and country."""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from mmdb_writer import MMDBWriter
from multidict import CIMultiDict
from netaddr import IPSet  # type: ignore[import-untyped]  # no stubs published

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import encode_batch
from collector.cli import main
from collector.config import ConfigError, Settings, make_settings
from collector.enrich import Enricher, Network, client_address
from collector.storage.schema import UNKNOWN_ASN, UNKNOWN_CC
from collector.web.keys import STORAGE
from tests.collector.app_client import MSGPACK, enrolled, recent, running

PTCL = "Pakistan Telecommunication Company Limited"
RANGES: dict[str, dict[str, Any]] = {
    "198.51.100.0/24": {
        "autonomous_system_number": 17557,
        "autonomous_system_organization": PTCL,
        "country": {"iso_code": "PK"},
    },
    "203.0.113.0/24": {
        "autonomous_system_number": 45669,
        "autonomous_system_organization": "Mobilink",
        "country": {"iso_code": "PK"},
    },
    "2001:db8:45::/48": {
        "autonomous_system_number": 45669,
        "autonomous_system_organization": "Mobilink",
        # A range without a country: the registration's country stands in.
        "registered_country": {"iso_code": "PK"},
    },
}


def write_mmdb(path: Path, ranges: dict[str, dict[str, Any]], kind: str = "GeoLite2-ASN") -> str:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for cidr, record in ranges.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return str(path)


@pytest.fixture
def combined(tmp_path: Path) -> str:
    return write_mmdb(tmp_path / "combined.mmdb", RANGES)


def test_lookups_in_a_combined_database(combined: str) -> None:
    enricher = Enricher.open([combined])
    try:
        assert enricher.lookup("198.51.100.7") == Network(17557, PTCL, "PK")
        assert enricher.lookup("203.0.113.200") == Network(45669, "Mobilink", "PK")
        assert enricher.lookup("::ffff:198.51.100.7") == Network(17557, PTCL, "PK")
        assert enricher.lookup("2001:db8:45::1") == Network(45669, "Mobilink", "PK")
        for unknown in ("192.0.2.1", "2001:db8:99::1", "not an ip", "", None):
            assert enricher.lookup(unknown) == Network()
    finally:
        enricher.close()


def test_separate_asn_and_country_databases(tmp_path: Path) -> None:
    asn_only = {k: {f: v for f, v in r.items() if "country" not in f} for k, r in RANGES.items()}
    countries = {"198.51.100.0/23": {"country": {"iso_code": "pk"}}}
    paths = [
        write_mmdb(tmp_path / "asn.mmdb", asn_only),
        write_mmdb(tmp_path / "country.mmdb", countries, "GeoLite2-Country"),
    ]
    enricher = Enricher.open(paths)
    try:
        assert enricher.lookup("198.51.100.7") == Network(17557, PTCL, "PK")
        assert enricher.lookup("198.51.101.7") == Network(None, None, "PK")
        assert enricher.lookup("203.0.113.1") == Network(45669, "Mobilink", None)
    finally:
        enricher.close()


def test_an_ipv4_only_database_answers_nothing_for_ipv6(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["198.51.100.0/24"]), RANGES["198.51.100.0/24"])
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    enricher = Enricher.open([str(tmp_path / "v4.mmdb")])
    assert enricher.lookup("2001:db8:45::1") == Network()
    assert enricher.lookup("198.51.100.1").asn == 17557
    enricher.close()
    assert Enricher().lookup("198.51.100.1") == Network()  # nothing configured


def _request(peer: str, *forwarded: str) -> Any:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    return make_mocked_request("POST", MEASUREMENTS_PATH, headers=headers).clone(remote=peer)


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # An untrusted peer's header is ignored: anyone can send one.
        ("198.51.100.7", ("203.0.113.1",), "198.51.100.7"),
        ("10.0.0.1", (), "10.0.0.1"),
        ("10.0.0.1", ("203.0.113.1",), "203.0.113.1"),
        # A chain of proxies: the first untrusted hop from the right; what the client wrote
        # to its left proves nothing.
        ("10.0.0.1", ("1.1.1.1, 203.0.113.1, 10.0.0.9",), "203.0.113.1"),
        ("10.0.0.1", ("1.1.1.1", "203.0.113.1, 10.0.0.9"), "203.0.113.1"),
        # Malformed entries are skipped; ports and brackets are understood.
        ("10.0.0.1", ("203.0.113.1, unknown, , 10.0.0.2:80",), "203.0.113.1"),
        ("10.0.0.1", ("203.0.113.1:4711",), "203.0.113.1"),
        ("10.0.0.1", ("garbage",), "10.0.0.1"),
        # Every hop trusted: the leftmost is the client.
        ("10.0.0.1", ("10.1.1.1, 10.2.2.2",), "10.1.1.1"),
        # IPv6 peers and hops; IPv4-mapped addresses compare as IPv4.
        ("2001:db8:ffff::1", ("[2001:db8:45::7]:443",), "2001:db8:45::7"),
        ("2001:db8:ffff::1", ("2001:db8:45::7, 2001:db8:ffff::2",), "2001:db8:45::7"),
        ("::ffff:10.0.0.1", ("::ffff:198.51.100.7",), "198.51.100.7"),
        ("2001:db8:45::7", ("198.51.100.7",), "2001:db8:45::7"),
    ],
)
def test_client_address(peer: str, forwarded: tuple[str, ...], expected: str) -> None:
    assert client_address(_request(peer, *forwarded), PROXIES) == expected


def test_client_address_trusts_nobody_by_default() -> None:
    assert client_address(_request("10.0.0.1", "203.0.113.1"), ()) == "10.0.0.1"


def test_configuration_errors(tmp_path: Path, combined: str) -> None:
    (tmp_path / "empty.mmdb").write_bytes(b"")
    (tmp_path / "text.mmdb").write_text("url,category_code\n" * 100)
    for path, reason in [
        (tmp_path / "missing.mmdb", "no such file"),
        (tmp_path, "is a directory"),
        (tmp_path / "empty.mmdb", "not a MaxMind (mmdb) database"),
        (tmp_path / "text.mmdb", "not a MaxMind (mmdb) database"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(reason)) as info:
            make_settings(geoip=[combined, str(path)])
        assert str(info.value).startswith(f"--geoip {str(path)!r}: ")
    for cidr in ("10.0.0.1/8", "10.0.0.0/33", "proxy.example"):
        with pytest.raises(ConfigError, match=r"^--trusted-proxy "):
            make_settings(trusted_proxies=[cidr])
    settings = make_settings(geoip=[combined], trusted_proxies=["127.0.0.1", "::1/128"])
    assert settings.geoip == (combined,)
    assert settings.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )


def test_the_cli_refuses_a_bad_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "GeoLite2-ASN.mmdb")
    assert main(["serve", "--geoip", missing]) == 2
    assert missing in capsys.readouterr().err


@pytest.mark.asyncio
async def test_upload_from_behind_a_trusted_proxy_stores_asn_and_country(
    storage_url: str, combined: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # TestClient connects from 127.0.0.1: here that is the load balancer.
    settings = Settings(
        db_url=storage_url,
        geoip=(combined,),
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    async with running(settings) as client:
        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(3), key)
        headers = {**MSGPACK, "X-Forwarded-For": "1.2.3.4, 198.51.100.7"}
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=headers)
        assert response.status == 200, await response.text()
        counts = client.app[STORAGE].rollup_counts()
    assert counts
    assert {(asn, cc) for _, asn, cc, _ in counts} == {(17557, "PK")}
    assert sum(counts.values()) == 3
    assert "198.51.100.7" not in caplog.text


@pytest.mark.asyncio
async def test_without_a_trusted_proxy_the_header_is_ignored(tmp_path: Path, combined: str) -> None:
    db = tmp_path / "c.db"
    async with running(Settings(db_url=f"sqlite:///{db}", geoip=(combined,))) as client:
        agent_id, key = await enrolled(client)
        batch = encode_batch(agent_id, 1, recent(2), key)
        headers = {**MSGPACK, "X-Forwarded-For": "198.51.100.7"}
        response = await client.post(MEASUREMENTS_PATH, data=batch, headers=headers)
        assert response.status == 200, await response.text()
        counts = client.app[STORAGE].rollup_counts()
    # 127.0.0.1 is in no database: the network stays unknown, as with no database at all.
    assert {(asn, cc) for _, asn, cc, _ in counts} == {(UNKNOWN_ASN, UNKNOWN_CC)}
    # By default the address itself is kept nowhere.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("c.db*"))
    assert b"198.51.100.7" not in stored
    assert b"127.0.0.1" not in stored
