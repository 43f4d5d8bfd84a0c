"""Agent verdict: what the layers share, the pairs of endpoints they walk, the evidence they
give, the judgement of a layer at which every endpoint failed, and the doubts that keep a
walk without a control from ending in ``ok``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import EndpointObservation, HTTPRoundTrip, TLSHandshake

Evidence = dict[str, str | int | float | bool]

_MAX_LISTED = 4  # addresses in evidence: enough to show the answer, small on the wire


@dataclass(frozen=True)
class Pair:
    agent: EndpointObservation
    control: EndpointObservation | None  # the control's endpoint at the same IP


@dataclass(frozen=True)
class Failed:
    ip: str
    failure: str
    control_ok: bool | None  # None: nothing to compare with
    control_failure: str | None
    trigger: str | None  # from the SNI or Host swap, when one ran


# A layer of the endpoint walk: a verdict, or the pairs that passed it on to the next layer.
# ``doubts`` collects what keeps a no-control walk that ends well from being called ok.
Layer = Callable[[Target, list[Pair], Vantage | None, list[Evidence]], Verdict | list[Pair]]


def pair_up(agent: Vantage, control: Vantage | None) -> list[Pair]:
    """The agent's endpoints, each with the control's at the same IP where there is one."""
    if control is None:
        return [Pair(e, None) for e in agent.endpoints]
    theirs: dict[str, EndpointObservation] = {}
    for end in control.endpoints:
        theirs.setdefault(end.ip, end)
    shared = [Pair(e, theirs[e.ip]) for e in agent.endpoints if e.ip in theirs]
    # The control measured none of these IPs: judge them on local evidence.
    return shared or [Pair(e, None) for e in agent.endpoints]


def dns_failure(control: Vantage | None) -> str | None:
    """Why the control's resolver gave it nothing to connect to, if it did not: the control
    then failed before any endpoint layer, and shares whatever failure the agent has there."""
    if control is None:
        return None
    system = control.dns.system
    if system.failure is None and system.addresses:
        return None
    return system.failure or f.DNS_NO_ANSWER


def control_side(
    pair: Pair, control: Vantage | None, passed: bool, failure: str | None
) -> tuple[bool | None, str | None]:
    """How the control fared at a layer, for ``Failed``: ``passed`` and ``failure`` are read
    off its endpoint at the pair's IP; with none there, a control whose own DNS failed failed
    too, and otherwise there is nothing to compare with."""
    if pair.control is not None:
        return passed, failure
    if (theirs := dns_failure(control)) is not None:
        return False, theirs
    return None, None


def doubt(doubts: list[Evidence], ip: str, failure: str) -> None:
    """A failure seen with no control to weigh it: the walk may go on with the endpoints that
    worked, but may not end in ``ok`` on local evidence alone."""
    doubts.append({"ip": ip, "failure": failure, "reason": "no control"})


def status_of(page: HTTPRoundTrip | None) -> int | None:
    return None if page is None else page.status


def first_failure(
    end: EndpointObservation | None, last: TLSHandshake | HTTPRoundTrip | None
) -> str | None:
    """The failure that stopped an endpoint at or before the layer that ``last`` belongs to."""
    if end is None:
        return None
    for step in (end.tcp, end.tls, last):
        if step is not None and step.failure is not None:
            return step.failure
    return None


def swap_worked(swap: TLSHandshake | HTTPRoundTrip | None) -> bool:
    if isinstance(swap, HTTPRoundTrip):
        return swap.status is not None and swap.fingerprint is None
    return swap is not None and swap.failure is None


def swap_trigger(swap: TLSHandshake | HTTPRoundTrip | None, name: str) -> str | None:
    """The swap's conclusion: the name triggers the censor, or the IP does; None if none ran."""
    if swap is None:
        return None
    return name if swap_worked(swap) else "ip"


def judge(kinds: Mapping[str, str], failed: Sequence[Failed], default: str | None) -> Verdict:
    """Every endpoint failed at this layer: blocked, down, or no way to tell."""
    blocked = next((x for x in failed if x.control_ok), None)
    if blocked is None and not any(x.control_ok is False for x in failed):
        # No control to compare with: only a swap that worked is local evidence.
        blocked = next((x for x in failed if x.trigger not in (None, "ip")), None)
        if blocked is None:
            return inconclusive(failed[0].failure, "no control to compare with")
    if blocked is None:
        compared = next(x for x in failed if x.control_ok is False)
        return same_failure(compared.failure, compared.control_failure or "")
    kind = kinds.get(blocked.failure)
    if kind is None:
        return inconclusive(blocked.failure, "unclassified failure")
    evidence: Evidence = {"failure": blocked.failure, "ip": blocked.ip}
    if trigger := blocked.trigger or default:
        evidence["trigger"] = trigger
    return Verdict(kind, evidence)


def same_failure(failure: str, control_failure: str) -> Verdict:
    """The control failed too, at this layer or before it: the site is down, not censored,
    whatever each failure is called (both are in the evidence)."""
    return Verdict("down", {"failure": failure, "control_failure": control_failure})


def inconclusive(failure: str, reason: str) -> Verdict:
    return Verdict("inconclusive", {"failure": failure, "reason": reason})


def listed(addresses: Iterable[str]) -> str:
    return ",".join(list(addresses)[:_MAX_LISTED])
