"""Agent verdict: the protocol test's rule, a pure function from its probes to a verdict.

A shape is *blocked* when its packet went unanswered while its benign twin (random bytes of
the same size, to the same far end, at the same moment) came back: the path carries
datagrams of that size, and lost the one shaped like the protocol. With the twin silent as
well, nothing can be said of the shape (the path, or the far end, lost both).

- ``quic.blocked``: the QUIC Initial naming the target went unanswered. ``trigger`` says
  what it was keyed on: ``sni`` when the same Initial naming the benign name came back (the
  censor read the name out of the Initial), ``quic`` when neither did (the censor drops QUIC
  Initials whatever they name). The site probes (the two Initials to the target's own UDP
  443) decide too, when the benign one reached the site (an answer, or an ICMP port
  unreachable: the host was reached) and the target's did not; a site that reached with
  neither is a site that does not speak QUIC, which proves nothing.
- ``vpn.blocked``: a WireGuard or OpenVPN shape went unanswered; ``trigger`` lists which.
  When QUIC and a VPN shape are both blocked the verdict is ``quic.blocked`` (it is the one
  about the target) and ``vpn`` lists the shapes.
- ``ok``: QUIC naming the target came back from the far end and nothing was blocked;
  ``undecided`` lists shapes whose twins were lost too.
- ``inconclusive``: the test could not run, or no twin came back.

Why these names and rules: docs/design/011-protocols-degradation.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.model.failures import CONNECTION_REFUSED
from agent.model.measurement import Verdict
from agent.model.protocols import VPN_SHAPES, ProtocolObservation, ProtocolProbe

__all__ = ["decide_protocols", "reached"]

Evidence = dict[str, str | int | float | bool]


def reached(probe: ProtocolProbe) -> bool:
    """The packet got to its host: it was answered, or the host said nothing listens."""
    return probe.answered or probe.failure == CONNECTION_REFUSED


def _find(
    probes: Sequence[ProtocolProbe], shape: str, *, random: bool = False, site: bool = False
) -> ProtocolProbe | None:
    for probe in probes:
        if probe.shape == shape and probe.random == random and probe.site == site:
            return probe
    return None


def _blocked(probes: Sequence[ProtocolProbe], shape: str) -> bool | None:
    """Whether the far end's echo lost ``shape`` but not its twin; None: cannot say."""
    probe, twin = _find(probes, shape), _find(probes, shape, random=True)
    if probe is None or twin is None or not twin.answered:
        return None
    return not probe.answered


def _quic(probes: Sequence[ProtocolProbe]) -> tuple[str | None, list[str]]:
    """(the QUIC trigger if blocked, where it was seen: far end and/or site)."""
    where: list[str] = []
    trigger = None
    named = _blocked(probes, "quic")
    if named:
        where.append("far end")
        benign = _find(probes, "quic-benign")
        trigger = "sni" if benign is not None and benign.answered else "quic"
    site, site_benign = _find(probes, "quic", site=True), _find(probes, "quic-benign", site=True)
    if site is not None and site_benign is not None and reached(site_benign) and not reached(site):
        where.append("site")
        trigger = trigger or "sni"
    return trigger, where


def _site_quic(probes: Sequence[ProtocolProbe]) -> str:
    site = _find(probes, "quic", site=True)
    if site is None:
        return "not tested"
    return "answered" if site.answered else ("reached" if reached(site) else "silent")


def decide_protocols(obs: ProtocolObservation) -> Verdict:
    """``quic.blocked``, ``vpn.blocked``, ``ok`` or ``inconclusive``; total, deterministic."""
    if obs.failure is not None:
        return Verdict("inconclusive", {"reason": "no far end", "failure": obs.failure})
    probes = obs.probes
    decided = {shape: _blocked(probes, shape) for shape in ("quic", *VPN_SHAPES)}
    vpn = [shape for shape in VPN_SHAPES if decided[shape]]
    trigger, where = _quic(probes)
    evidence: Evidence = {"site_quic": _site_quic(probes)}
    failures = [p.failure for p in probes if p.failure and not p.random and not p.site]
    if failures:
        evidence["failure"] = failures[0]
    if trigger is not None:
        evidence |= {"trigger": trigger, "where": " and ".join(where)}
        if trigger == "sni":
            evidence["name"] = obs.name
        if vpn:
            evidence["vpn"] = ",".join(vpn)
        return Verdict("quic.blocked", evidence)
    if vpn:
        return Verdict("vpn.blocked", evidence | {"trigger": ",".join(vpn)})
    if decided["quic"] is None:
        silent = all(blocked is None for blocked in decided.values())
        reason = "the far end echoed no twin" if silent else "the QUIC twin was lost"
        return Verdict("inconclusive", {"reason": reason, **evidence})
    undecided = [shape for shape, blocked in decided.items() if blocked is None]
    if undecided:
        evidence["undecided"] = ",".join(undecided)
    return Verdict("ok", evidence)
