"""Collector: a trace as the collector shows it. Pure: the ASN lookup is handed in.

A trace (``agent.model.trace``, its verdict ``agent.verdict.trace``) names the routers on the
path to the censor. The collector does three things with them wherever a measurement is
shown (the query API, the export, the dashboard, the report):

- the AS of ``after_hop``: ``after_hop_asn`` and ``after_hop_as_name`` from the collector's
  ASN database (``collector.enrich``), added to the evidence as it is shown, never to the
  signed record. Evidence is read from the record at every view, so what reclassification
  does to a verdict leaves the annotation as it was, and a newer database improves it;
- public views hide the routers that could point at the agent: the one at TTL 1 (the
  customer's own router, often the volunteer's) and any in non-public space
  (``agent.model.addresses.is_bogon``: private, shared 100.64.0.0/10, link-local...) become
  ``*``, in the evidence and in the observations; the operator's views show them all;
- the rows of the measurement page's table: per TTL, the router and what the trigger and
  the benign swap met.

docs/design/013-trace.md, "Collector", has why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.model.addresses import is_bogon
from agent.model.trace import FULL_TTL, TraceAttempt, TraceObservation

if TYPE_CHECKING:
    from collector.enrich import Network

__all__ = ["HIDDEN", "HopRow", "Lookup", "hidden", "hop_rows", "shown"]

HIDDEN = "*"  # the verdict's own mark for a router that did not answer
Lookup = Callable[[str], "Network"]  # collector.enrich.Enricher.lookup


def hidden(router: str, ttl: int, own: AbstractSet[str] = frozenset()) -> bool:
    """Whether a public view hides the router that answered at ``ttl``; ``own``: the routers
    that answered at TTL 1, hidden wherever else they show up too."""
    return ttl <= 1 or router in own or is_bogon(router)


def _masked_routers(routers: str, own: AbstractSet[str]) -> str:
    return " ".join(
        HIDDEN if hidden(r, ttl, own) else r for ttl, r in enumerate(routers.split(" "), 1)
    )


def _after_hop_hidden(after: str, routers: object, own: AbstractSet[str]) -> bool:
    """``after_hop`` is the last router of ``routers`` that answered: its place there is its
    TTL. Hidden too when it is not there (evidence that does not hold together)."""
    listed = routers.split(" ") if isinstance(routers, str) else []
    if after not in listed:
        return True
    ttl = len(listed) - listed[::-1].index(after)
    return hidden(after, ttl, own)


def _evidence(
    evidence: Mapping[str, Any], lookup: Lookup | None, own: AbstractSet[str] | None
) -> dict[str, Any]:
    """The evidence with the AS of ``after_hop``; with ``own`` (a public view), the routers
    hidden."""
    out = dict(evidence)
    after = out.get("after_hop")
    if isinstance(after, str) and lookup is not None:
        network = lookup(after)
        if network.asn is not None:
            out["after_hop_asn"] = network.asn
            if network.as_name:
                out["after_hop_as_name"] = network.as_name
    if own is not None:
        routers = out.get("routers")
        if isinstance(routers, str):
            own = own | {routers.split(" ")[0]} - {HIDDEN}
            out["routers"] = _masked_routers(routers, own)
        if isinstance(after, str) and _after_hop_hidden(after, routers, own):
            out["after_hop"] = HIDDEN
    return out


def _attempts(trace: Mapping[str, Any]) -> list[Any]:
    attempts = trace.get("attempts")
    return attempts if isinstance(attempts, list) else []


def _own_routers(attempts: list[Any]) -> frozenset[str]:
    """The routers that answered at TTL 1, in a trace as JSON."""
    return frozenset(
        a["router"]
        for a in attempts
        if isinstance(a, Mapping) and a.get("ttl") == 1 and isinstance(a.get("router"), str)
    )


def _public_trace(trace: Mapping[str, Any], own: AbstractSet[str]) -> dict[str, Any]:
    masked = []
    for attempt in _attempts(trace):
        if isinstance(attempt, Mapping):
            router, ttl = attempt.get("router"), attempt.get("ttl")
            if isinstance(router, str) and (not isinstance(ttl, int) or hidden(router, ttl, own)):
                attempt = {**attempt, "router": HIDDEN}
        masked.append(attempt)
    return {**trace, "attempts": masked}


def shown(obj: dict[str, Any], *, operator: bool, lookup: Lookup | None = None) -> dict[str, Any]:
    """A measurement as ``agent.wire.json.measurement_obj`` renders it (and the export), as
    the collector shows it: a trace's evidence with the AS of ``after_hop`` when ``lookup``
    knows it, and for the public (not ``operator``) its identifying routers hidden. Anything
    other than a trace comes back as it is."""
    trace = obj.get("trace")
    if not isinstance(trace, Mapping):
        return obj
    out = dict(obj)
    own = None if operator else _own_routers(_attempts(trace))
    evidence = obj.get("evidence")
    if isinstance(evidence, Mapping):
        out["evidence"] = _evidence(evidence, lookup, own)
    if own is not None:
        out["trace"] = _public_trace(trace, own)
    return out


@dataclass(frozen=True)
class HopRow:
    """One TTL of a trace, as the measurement page's table shows it."""

    ttl: int
    router: str  # "" when none answered
    trigger: str  # the trigger's reactions at this TTL, in the order sent
    benign: str  # the benign swap's
    censor: bool  # the TTL the verdict located the censor at


def _reactions(attempts: Sequence[TraceAttempt]) -> str:
    out = []
    for a in attempts:
        text = a.reaction
        if a.status is not None:
            text += f" {a.status}"
        if a.fingerprint:
            text += f" ({a.fingerprint})"
        out.append(text)
    return ", ".join(out) or "-"


def hop_rows(trace: TraceObservation, censor_ttl: object, *, operator: bool) -> list[HopRow]:
    """Per TTL sent, in order (the normal TTL's attempt last): who answered and what the
    trigger and the benign swap met; routers hidden as :func:`shown` hides them."""
    by_ttl: dict[int, list[TraceAttempt]] = {}
    for a in trace.attempts:
        by_ttl.setdefault(a.ttl, []).append(a)
    own = {a.router for a in by_ttl.get(1, ()) if a.router}
    rows = []
    for ttl in sorted(by_ttl):
        attempts = by_ttl[ttl]
        router = next((a.router for a in attempts if a.router), None) or ""
        if router and not operator and hidden(router, ttl, own):
            router = HIDDEN
        rows.append(
            HopRow(
                ttl=ttl,
                router=router,
                trigger=_reactions([a for a in attempts if a.trigger]),
                benign=_reactions([a for a in attempts if not a.trigger]),
                censor=ttl == censor_ttl and ttl != FULL_TTL,
            )
        )
    return rows
