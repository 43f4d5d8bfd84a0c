"""Agent verdict: what the layers share, the pairs of endpoints they walk, the evidence they
give, and the judgement of a layer at which every endpoint failed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

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
        compared = [x for x in failed if x.control_ok is False]
        return same_failure(compared[0].failure, *(x.control_failure or "" for x in compared))
    kind = kinds.get(blocked.failure)
    if kind is None:
        return inconclusive(blocked.failure, "unclassified failure")
    evidence: Evidence = {"failure": blocked.failure, "ip": blocked.ip}
    if trigger := blocked.trigger or default:
        evidence["trigger"] = trigger
    return Verdict(kind, evidence)


def same_failure(failure: str, *control_failures: str) -> Verdict:
    evidence: Evidence = {"failure": failure, "control_failure": control_failures[0]}
    if all(c == failure for c in control_failures):
        return Verdict("down", evidence)
    return Verdict("inconclusive", {**evidence, "reason": "the control failed differently"})


def inconclusive(failure: str, reason: str) -> Verdict:
    return Verdict("inconclusive", {"failure": failure, "reason": reason})


def listed(addresses: Iterable[str]) -> str:
    return ",".join(list(addresses)[:_MAX_LISTED])
