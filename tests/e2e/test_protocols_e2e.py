"""The protocol test end to end in the censor lab: ``netsonde-agent probe --protocols`` from
the agent namespace through the lab collector's far end (UDP 443, HTTP 80 in the net
namespace). The QUIC row's Initials naming it are dropped by SNI wherever they go; the VPN
row blocks WireGuard and OpenVPN shapes for every flow while it is on; clean rows stay ok."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.lab import engine
from tests.lab.collector import LabCollector
from tests.lab.lab import Lab
from tests.lab.protocol_censors import set_vpn_drop

pytestmark = pytest.mark.lab

VPN_SHAPES = "wireguard,openvpn-udp,openvpn-tcp"


def by_host(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(urlsplit(r["target"]).hostname): r for r in results}


def test_quic_rows_get_their_verdict_by_name_and_clean_rows_stay_ok(
    lab: Lab, collector: LabCollector
) -> None:
    quic = lab.table.by_technique("quic-sni-drop")
    clean = lab.table.by_technique("clean")
    assert quic
    assert clean
    rows = [*quic, *clean]
    results = by_host(engine.protocols(lab, [r.url for r in rows], collector_url=collector.url))
    for row in quic:
        result = results[row.domain]
        assert result["verdict"] == row.expected, result
        assert result["evidence"]["trigger"] == "sni"
        assert result["evidence"]["name"] == row.domain
        # The site's own UDP 443 says so too: the benign Initial reached its host.
        assert result["evidence"]["where"] == "far end and site", result
    for row in clean:
        result = results[row.domain]
        assert result["verdict"] == "ok", result
        assert "undecided" not in result["evidence"], result
        probes = result["protocols"]["probes"]
        assert all(p["answered"] for p in probes if not p["site"]), probes


def test_the_vpn_row_gives_vpn_blocked_while_on_and_ok_after(
    lab: Lab, collector: LabCollector
) -> None:
    [row] = lab.table.by_technique("vpn-drop")
    benign = lab.table.benign
    urls = [row.url, benign.url]
    set_vpn_drop(lab, True)
    try:
        during = by_host(engine.protocols(lab, urls, collector_url=collector.url))
    finally:
        set_vpn_drop(lab, False)
    after = by_host(engine.protocols(lab, urls, collector_url=collector.url))
    for domain in (row.domain, benign.domain):
        assert during[domain]["verdict"] == row.expected, during[domain]
        assert during[domain]["evidence"]["trigger"] == VPN_SHAPES
        assert during[domain]["evidence"]["failure"] == "connection_reset"  # OpenVPN over TCP
        assert after[domain]["verdict"] == "ok", after[domain]
