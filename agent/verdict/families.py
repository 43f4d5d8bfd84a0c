"""Agent verdict, address families: a site published over IPv4 and IPv6 is judged once per
family, so that a censor that blocks one family and forgets the other is seen and named.

A measurement that asked AAAA (``DNSObservation.system6``) is cut into two views, each
holding one family's DNS (the A or the AAAA queries, system and public resolvers) and its
endpoints, the control's likewise, and ``decide`` judges each view as a whole measurement.
The two verdicts then make one (docs/design/002-verdicts.md, "IPv6"):

- a family the site does not have (nobody got an address of it) gives way to the other,
  and so does an empty AAAA answer at the agent: resolvers drop AAAA for clients without
  IPv6 (BIND's filter-aaaa, dnsmasq's filter-AAAA), which hides nothing the agent could use;
- a family with nothing measured (no route from the agent) gives way to the other;
- otherwise the worse verdict stands, blocked before inconclusive before ok before down,
  IPv4's on a tie; where the other family was ``ok``, the evidence names the family that
  was not: ``family`` ``"4"`` or ``"6"``.

Records from before IPv6 was measured have no ``system6``, and are judged as they were.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.observations import DNSObservation

__all__ = ["by_family"]

Judge = Callable[[Vantage, Vantage | None], Verdict]

# Verdicts that are not a block, from the best news to the worst; a block ranks above all.
_RANK = {"down": 0, "ok": 1, "inconclusive": 2}
_BLOCK_RANK = 3


def by_family(judge: Judge, agent: Vantage, control: Vantage | None) -> Verdict | None:
    """The verdict from both families' views, or None for a measurement without AAAA."""
    if agent.dns.system6 is None:
        return None
    four, six = view(agent, 4), view(agent, 6)
    return combine(
        (judge(four, _control_view(control, 4)), four),
        (judge(six, _control_view(control, 6)), six),
    )


def view(vantage: Vantage, family: int) -> Vantage:
    """One family's part of a vantage: its queries' answers and its endpoints."""
    dns = vantage.dns
    if family == 6 and dns.system6 is not None:
        part = DNSObservation(system=dns.system6, public=dns.public6)
    else:
        part = DNSObservation(system=dns.system, public=dns.public)
    ends = tuple(e for e in vantage.endpoints if (":" in e.ip) == (family == 6))
    return Vantage(dns=part, endpoints=ends)


def _control_view(control: Vantage | None, family: int) -> Vantage | None:
    """A control that did not ask AAAA (an older collector) has nothing to say about IPv6."""
    if control is None or (family == 6 and control.dns.system6 is None):
        return None
    return view(control, family)


def combine(four: tuple[Verdict, Vantage], six: tuple[Verdict, Vantage]) -> Verdict:
    """One verdict from each family's verdict and the agent's view it came from."""
    (v4, seen4), (v6, seen6) = four, six
    if _no_answer(v6) or _unmeasured(v6, seen6):
        return v4
    if (_no_answer(v4) and v4.verdict in _RANK) or _unmeasured(v4, seen4):
        return v6
    worse, family, other = (v4, "4", v6) if _rank(v4) >= _rank(v6) else (v6, "6", v4)
    if other.verdict == "ok" and worse.verdict != "ok":
        return Verdict(worse.verdict, {**worse.evidence, "family": family})
    return worse


def _rank(verdict: Verdict) -> int:
    return _RANK.get(verdict.verdict, _BLOCK_RANK)


def _no_answer(verdict: Verdict) -> bool:
    """The agent's resolver said the name has no address of this family."""
    return verdict.evidence.get("failure") == f.DNS_NO_ANSWER


def _unmeasured(verdict: Verdict, seen: Vantage) -> bool:
    """Nothing of this family was measured (no route to it), and nothing blocked before."""
    return not seen.endpoints and verdict.verdict in _RANK
