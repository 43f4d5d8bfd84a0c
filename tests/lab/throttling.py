"""Censor lab: the throttling censors, and the link conditions that must not look like them.

- ``throttle`` rows: a connection whose ClientHello (an https row: the SNI) or request (an
  http row: ``Host: name`` on port 80) names the domain is marked, whatever its destination,
  as the Russian throttler matched Twitter's names on any server; the marked connection's
  packets are put in a ``tc`` htb class at the row's ``rate``, towards the agent (``down``),
  towards the internet (``up``) or both (``params.direction``). Connections take the row's
  classes in turn, so each flow is held on its own, as a per-flow throttler holds it.
- ``link-slow`` and ``link-lossy`` rows are toggled (:func:`set_link_condition`), since they
  slow the agent's whole link and every test with it: a token bucket on every packet to and
  from the agent (the agent's own uplink and the net's side of the path), and for
  ``link-lossy`` random drops on the ISP's forwarding as well (iptables ``statistic``; this
  kernel has no netem). They are decoys: a test that names no one must never say
  ``throttled`` on them.

Pure functions give the rules and commands, so the unit tests read them;
:func:`set_link_condition` applies them to a running lab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.lab import addresses as plan
from tests.lab.scenarios import Scenario, ScenarioTable

if TYPE_CHECKING:
    from tests.lab.censors import HopRules
    from tests.lab.lab import Lab

__all__ = [
    "DEFAULT_LOSS",
    "DEFAULT_THROTTLE_RATE",
    "LINK_TECHNIQUES",
    "link_commands",
    "set_link_condition",
    "throttle_rules",
]

DEFAULT_THROTTLE_RATE = "1mbit"
DEFAULT_LINK_RATE = "2mbit"
DEFAULT_LOSS = "0.05"
THROTTLE_MARK_BASE = 0x10
THROTTLE_FLOWS = 8  # classes per row, taken by its connections in turn
# Packets a class holds (the lab sends MTU-sized ones: addresses.NO_GSO): enough that a flow
# is shaped rather than stalled by drops, and with a class per flow no backlog delays another.
THROTTLE_QUEUE = 40
DIRECTIONS = ("down", "up", "both")
LINK_TECHNIQUES = ("link-slow", "link-lossy")
# Where a link condition shapes: the agent's uplink (what it sends) and the net's side
# (what everyone sends it). Neither carries a censor's htb.
_SHAPED = (("agent", "up0"), ("net", "down0"))


def _match(row: Scenario) -> str:
    if row.scheme == "https":
        return f'-p tcp --dport 443 -m string --string "{row.domain}" --algo bm'
    # CRLF after the name, so a Host header that merely starts with it does not match.
    return f'-p tcp --dport 80 -m string --hex-string "Host: {row.domain}|0d0a|" --algo bm'


def throttle_rules(table: ScenarioTable, hop: str, rules: HopRules) -> None:
    """Adds the hop's throttle rows to ``rules``: marks for each row's connections, and an htb
    class per mark on each side it shapes."""
    rows = [row for row in table.rows if row.hop == hop and row.technique == "throttle"]
    if not rows:
        return
    sides = {"down": plan.AGENT_FACING_IFACE[hop], "up": plan.NET_FACING_IFACE[hop]}
    for side, iface in sides.items():
        if any(_shapes(row, side) for row in rows):
            rules.tc.append(["qdisc", "add", "dev", iface, "root", "handle", "1:", "htb"])
    for offset, row in enumerate(rows):
        rate = row.params.get("rate", DEFAULT_THROTTLE_RATE)
        for flow in range(THROTTLE_FLOWS):
            mark = THROTTLE_MARK_BASE + offset * THROTTLE_FLOWS + flow
            # Each rule counts every matching packet, so the n-th connection takes the n-th
            # mark in turn: a class per connection, as a per-flow throttler holds each flow.
            nth = f"-m statistic --mode nth --every {THROTTLE_FLOWS} --packet {flow}"
            rules.mangle.append(f"-A FORWARD {_match(row)} {nth} -j CONNMARK --set-mark {mark}")
            for side, iface in sides.items():
                if _shapes(row, side):
                    _shape(rules, iface, mark, rate)


def _shape(rules: HopRules, iface: str, mark: int, rate: str) -> None:
    """The marked connection's packets leaving by ``iface`` go to an htb class at ``rate``.

    CLASSIFY sets skb->priority, which htb honours without a tc classifier (cls_fw is not in
    every kernel); unmarked packets match no class and pass unshaped."""
    classid = f"1:{mark:x}"
    rules.mangle.append(
        f"-A FORWARD -o {iface} -m connmark --mark {mark} -j CLASSIFY --set-class {classid}"
    )
    rules.tc.append(
        ["class", "add", "dev", iface, "parent", "1:", "classid", classid]
        + ["htb", "rate", rate, "ceil", rate]
    )
    rules.tc.append(
        ["qdisc", "add", "dev", iface, "parent", classid, "handle", f"{mark:x}:"]
        + ["pfifo", "limit", str(THROTTLE_QUEUE)]
    )


def _shapes(row: Scenario, side: str) -> bool:
    return row.params.get("direction", "down") in (side, "both")


def link_commands(row: Scenario, on: bool) -> list[tuple[str, list[str]]]:
    """(namespace role, command) pairs that turn ``row``'s link condition on or off."""
    commands: list[tuple[str, list[str]]] = []
    rate = row.params.get("rate", DEFAULT_LINK_RATE)
    for role, iface in _SHAPED:
        if on:
            # A deep queue (latency 300ms) lets the delay vary with the load: the jitter.
            tbf = ["tbf", "rate", rate, "burst", "16kb", "latency", "300ms"]
            commands.append((role, ["tc", "qdisc", "replace", "dev", iface, "root", *tbf]))
        else:
            commands.append((role, ["tc", "qdisc", "del", "dev", iface, "root"]))
    if row.technique == "link-lossy":
        loss = row.params.get("loss", DEFAULT_LOSS)
        action = "-I" if on else "-D"
        iface = plan.AGENT_FACING_IFACE["isp"]
        for way in ("-i", "-o"):
            drop = ["-m", "statistic", "--mode", "random", "--probability", loss, "-j", "DROP"]
            commands.append(("isp", ["iptables", action, "FORWARD", way, iface, *drop]))
    return commands


def set_link_condition(lab: Lab, row: Scenario, on: bool) -> None:
    """Turns ``row``'s whole-link condition on or off in the running lab."""
    if row.technique not in LINK_TECHNIQUES:
        raise ValueError(f"{row.domain} is a {row.technique} row, not a link condition")
    for role, argv in link_commands(row, on):
        lab.run(role, argv, check=on)
