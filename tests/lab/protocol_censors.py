"""Censor lab: the protocol censors, by name in QUIC and by shape for VPNs, and their checks.

- ``quic-sni-drop`` rows: on the row's hop, iptables hands every UDP packet from the agent's
  side that is shaped like a QUIC v1 Initial (a ``u32`` match: long header, type Initial,
  version 1) to the lab's QUIC censor (``tests.lab.quic_censor``) through NFQUEUE, which
  decrypts it and drops it if its SNI is the row's domain (or under it), whatever the
  destination. A QUIC Initial's SNI is encrypted (with keys anyone can derive), so no
  iptables ``string`` match can see it; with ``--queue-bypass`` packets pass while the
  censor is not running.
- ``vpn-drop`` rows are toggled (:func:`set_vpn_drop`), since they act on every flow of the
  agent, as a protocol block does: on the ISP hop, ``u32`` rules drop a WireGuard handshake
  initiation (a 148-byte UDP payload opening with type 1 and three zero bytes) and an
  OpenVPN hard reset in a datagram (first byte 0x38: ``P_CONTROL_HARD_RESET_CLIENT_V2``,
  key id 0), and reset a TCP connection whose first bytes are a framed one (a length under
  256, then 0x38), as censors that fingerprint OpenVPN do.

Pure functions give the rules; the checks (``tests.lab.checks.CHECKS``) send the shapes with
plain clients (``tests.lab.clients``), beside random bytes of the same size.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tests.lab import addresses as plan
from tests.lab.scenarios import Scenario, ScenarioTable

if TYPE_CHECKING:
    from tests.lab.censors import HopRules
    from tests.lab.checks import CheckResult
    from tests.lab.lab import Lab

__all__ = [
    "PROTOCOL_TECHNIQUES",
    "QUIC_QUEUE",
    "check_quic_sni_drop",
    "check_vpn_drop",
    "protocol_rules",
    "quic_censor_config",
    "set_vpn_drop",
    "vpn_rules",
]

# Rows judged by the protocol test (probe --protocols), not by the site test.
PROTOCOL_TECHNIQUES = ("quic-sni-drop", "vpn-drop")
QUIC_QUEUE = 7
_PAYLOAD = "0>>22&0x3C@8"  # the first 4 bytes of a UDP payload (no IP options assumed)
QUIC_INITIAL_V1 = f"{_PAYLOAD}>>24&0xF0=0xC0 && 0>>22&0x3C@9=0x1"
WIREGUARD_INIT = f"0>>22&0x3C@4>>16=156 && {_PAYLOAD}=0x01000000"
OPENVPN_UDP = f"0>>22&0x3C@4>>16=22:200 && {_PAYLOAD}>>24=0x38"
# The first 4 bytes of a TCP payload: byte 0 (the length's high byte) 0, byte 2 the opcode.
OPENVPN_TCP = "0>>22&0x3C@12>>26&0x3C@0&0xFF00FF00=0x3800"
WIREGUARD_PORT = 51820


def protocol_rules(table: ScenarioTable, hop: str, rules: HopRules) -> None:
    """Adds the hop's QUIC queue rule when it has ``quic-sni-drop`` rows."""
    if quic_censor_config(table, hop) is None:
        return
    iface = plan.AGENT_FACING_IFACE[hop]
    rules.filter.append(
        f'-A FORWARD -i {iface} -p udp -m u32 --u32 "{QUIC_INITIAL_V1}" '
        f"-j NFQUEUE --queue-num {QUIC_QUEUE} --queue-bypass"
    )


def quic_censor_config(table: ScenarioTable, hop: str) -> dict[str, Any] | None:
    """The QUIC censor's config on ``hop``; None where it has no row to censor."""
    rows = [row for row in table.rows if row.hop == hop and row.technique == "quic-sni-drop"]
    if not rows:
        return None
    return {"queue": QUIC_QUEUE, "domains": [row.domain for row in rows]}


def vpn_rules() -> list[list[str]]:
    """The ``vpn-drop`` rules, as iptables arguments after ``-I``/``-D FORWARD``."""
    iface = plan.AGENT_FACING_IFACE["isp"]
    return [
        ["-i", iface, "-p", "udp", "-m", "u32", "--u32", WIREGUARD_INIT, "-j", "DROP"],
        ["-i", iface, "-p", "udp", "-m", "u32", "--u32", OPENVPN_UDP, "-j", "DROP"],
        ["-i", iface, "-p", "tcp", "-m", "u32", "--u32", OPENVPN_TCP,
         "-j", "REJECT", "--reject-with", "tcp-reset"],
    ]  # fmt: skip


def set_vpn_drop(lab: Lab, on: bool) -> None:
    """Turns the VPN block on or off on the running lab's ISP hop."""
    for rule in vpn_rules():
        lab.run("isp", ["iptables", "-I" if on else "-D", "FORWARD", *rule], check=on)


def _twin(size: int) -> bytes:
    data = os.urandom(size)
    return bytes([0x02 + data[0] % 0x30]) + data[1:]  # no shape's first byte, no letter


def _reached(result: dict[str, Any]) -> bool:
    """A datagram got to the site, whose host says nothing listens there (or answers)."""
    return result["error"] in (None, "ECONNREFUSED")


def check_quic_sni_drop(lab: Lab, row: Scenario) -> CheckResult:
    """An Initial naming the row is lost on the way to its site; one naming the benign name
    reaches it (its host refuses: no QUIC server), as does random bytes of the same size."""
    from agent.net.quic import initial  # verified against RFC 9001's vectors
    from tests.lab.checks import _result, client

    def send(payload: bytes) -> dict[str, Any]:
        return client(lab, "agent", "udp", ip=row.ip, port=443, payload=payload.hex())

    named = send(initial(row.domain))
    benign = send(initial(lab.table.benign_domain))
    random = send(_twin(1200))
    passed = named["error"] == "timeout" and _reached(benign) and _reached(random)
    observed = (
        f"SNI {row.domain}: {named['error']}; benign: {benign['error']}; random: {random['error']}"
    )
    return _result(row, passed, observed)


def _shapes(lab: Lab, row: Scenario) -> dict[str, str | None]:
    from tests.lab.checks import client

    wireguard = b"\x01\x00\x00\x00" + os.urandom(144)
    openvpn = b"\x38" + os.urandom(8) + bytes(5)
    framed = b"\x00\x0e" + openvpn
    out: dict[str, str | None] = {}
    for name, payload in (("wireguard", wireguard), ("openvpn-udp", openvpn)):
        for label, data in ((name, payload), (f"{name} twin", _twin(len(payload)))):
            args = {"ip": row.ip, "port": WIREGUARD_PORT, "payload": data.hex()}
            out[label] = client(lab, "agent", "udp", **args)["error"]
    for label, data in (("openvpn-tcp", framed), ("openvpn-tcp twin", _twin(len(framed)))):
        # To the site's HTTP port: its server answers bytes that are no request, or waits.
        args = {"ip": row.ip, "port": 80, "payload": data.hex()}
        out[label] = client(lab, "agent", "tcp_send", **args)["error"]
    return out


def check_vpn_drop(lab: Lab, row: Scenario) -> CheckResult:
    """With the block on, the shapes are lost (OpenVPN over TCP reset) while their twins
    reach the site; with it off, the shapes reach it too."""
    from tests.lab.checks import _result

    set_vpn_drop(lab, True)
    try:
        during = _shapes(lab, row)
    finally:
        set_vpn_drop(lab, False)
    after = _shapes(lab, row)
    udp = ("wireguard", "openvpn-udp")
    passed = all(during[s] == "timeout" and during[f"{s} twin"] == "ECONNREFUSED" for s in udp)
    passed = passed and during["openvpn-tcp"] == "ECONNRESET"
    passed = passed and during["openvpn-tcp twin"] != "ECONNRESET"
    passed = passed and all(after[s] == "ECONNREFUSED" for s in udp)
    passed = passed and after["openvpn-tcp"] != "ECONNRESET"
    return _result(row, passed, f"on: {during}; off: {after}")
