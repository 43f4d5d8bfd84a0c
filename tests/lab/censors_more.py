"""Censor lab: the configuration of the rows that are broken for everyone, the CAPTCHA site,
ghost names, FIN injection and the on-path tap, as pure functions of the scenario table
(``censors`` has the rest, and calls these where their rows change what it writes)."""

from __future__ import annotations

from typing import Any

from tests.lab import addresses as plan
from tests.lab.scenarios import Scenario, ScenarioTable

DEFAULT_PRIVATE = "127.0.0.1"
# Every name on the ISP side of the lab: the CAPTCHA site challenges these, not the control.
ISP_NETWORK = "100.64.0.0/10"
BROKEN_MODES = {"reset-everywhere": "reset", "silent-everywhere": "silent"}
# How late an on-path row's server answers a connection: a far server, so the tap's RST
# (tests.lab.onpath_injector) reaches the client first, as it does in the wild.
FAR_SERVER_DELAY_MS = 200


def authoritative_records(row: Scenario) -> list[str]:
    """The authoritative server's dnsmasq lines for a row: none for a name that exists
    nowhere, a private address for everyone, or a name without any address record."""
    if row.technique in ("nxdomain-everywhere", "dns-ghost"):
        return []
    if row.technique == "noanswer-everywhere":
        # A TXT record makes the name exist: A queries get NOERROR with no answer.
        return [f'txt-record={row.domain},"netsonde lab: no address here"']
    if row.technique == "private-everywhere":
        address = row.params.get("answer", DEFAULT_PRIVATE)
        return [f"host-record={row.domain},www.{row.domain},{address}"]
    six = f",{row.ip6}" if row.ip6 else ""
    return [f"host-record={row.domain},www.{row.domain},{row.ip}{six}"]


def isp_resolver_records(row: Scenario) -> list[str]:
    if row.technique == "dns-ghost":
        return [f"address=/{row.domain}/{plan.BLOCKPAGE_SERVER}"]
    return []


def site_extras(row: Scenario) -> dict[str, Any]:
    """What the web server needs beyond the domain, IP and certificate."""
    if row.technique == "captcha":
        return {"challenge": [ISP_NETWORK]}
    if row.technique == "sni-onpath":
        return {"answer_delay_ms": FAR_SERVER_DELAY_MS}
    return {}


def needs_blockpage_server(table: ScenarioTable) -> bool:
    return bool(table.by_technique("dns-redirect") or table.by_technique("dns-ghost"))


def bad_certs(table: ScenarioTable) -> dict[str, str]:
    """The domains whose certificate fails for everyone, and how (``pki.build``)."""
    return {row.domain: row.params.get("cert", "expired") for row in table.by_technique("bad-cert")}


def broken_server_config(table: ScenarioTable) -> dict[str, Any] | None:
    sites = [
        {"ip": row.ip, "mode": BROKEN_MODES[row.technique]}
        for row in table.rows
        if row.technique in BROKEN_MODES
    ]
    return {"sites": sites, "ports": [80, 443]} if sites else None


def fin_injector_config(table: ScenarioTable, hop: str) -> dict[str, Any] | None:
    """The FIN injector on one hop; the hop's iptables drops what it answers
    (``censors.hop_rules``)."""
    rows = [row for row in table.rows if row.hop == hop]
    sni = [row.domain for row in rows if row.technique == "sni-fin"]
    host = [row.domain for row in rows if row.technique == "host-fin"]
    if not sni and not host:
        return None
    return {"iface": plan.AGENT_FACING_IFACE[hop], "sni": sni, "host": host}


def onpath_injector_config(table: ScenarioTable, hop: str) -> dict[str, Any] | None:
    """The on-path tap on one hop: it reads what the hop forwards towards the internet and
    answers the client on the agent's side; no rule of the hop drops anything for it."""
    sni = [row.domain for row in table.rows if row.hop == hop and row.technique == "sni-onpath"]
    if not sni:
        return None
    return {
        "iface": plan.NET_FACING_IFACE[hop],
        "reply_iface": plan.AGENT_FACING_IFACE[hop],
        "sni": sni,
    }
