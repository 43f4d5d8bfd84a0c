"""Agent verdict: a pure function from two views of a target to a verdict.

``decide`` does no I/O and reads no clock or randomness, so the agent (to print an
answer) and the collector (to reclassify stored raw observations when the rules
improve) reach the same verdict from the same observations. It goes layer by layer,
DNS, TCP, TLS, HTTP, and stops at the first layer where the agent and the control
disagree. Without a control it decides from local evidence (injection, bogons,
fingerprints, the SNI and Host swaps) and says ``inconclusive`` where it cannot tell.
The rules, and why they are these, are in docs/design/002-verdicts.md.

A module per layer (``dns``, ``tcp``, ``tls``, ``http``), on what they share (``judging``);
``families`` judges IPv4 and IPv6 apart and puts the two together; redirect chains in
``chain``: ``judge_chain`` walks the hops a site test followed, each judged by
``decide``, and says which hop to measure next. The verdict names are
``agent.model.verdicts``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.fingerprints import FingerprintSet
from agent.model.measurement import Hop, SiteMeasurement, Target, TargetError, Vantage, Verdict
from agent.model.verdicts import VERDICTS
from agent.verdict import chain, dns, families, http, tcp, tls
from agent.verdict.judging import Evidence, Layer, pair_up
from agent.verdict.protocols import decide_protocols
from agent.verdict.throttle import decide_throttle
from agent.verdict.trace import decide_trace

__all__ = ["VERDICTS", "decide", "judge_chain", "redecide"]

_LAYERS: tuple[Layer, ...] = (tcp.layer, tls.layer, http.layer)


def decide(
    target: Target,
    agent: Vantage,
    control: Vantage | None,
    *,
    online: bool | None = None,
    fingerprints: FingerprintSet | None = None,
) -> Verdict:
    """The verdict for one site test; total and deterministic for any well-typed input."""
    if online is False:
        return Verdict("offline")
    both = families.by_family(
        lambda a, c: decide(target, a, c, online=online, fingerprints=fingerprints), agent, control
    )
    if both is not None:
        return both
    dns_verdict = dns.verdict(target, agent, control, fingerprints)
    if dns_verdict is not None:
        return dns_verdict
    pairs = pair_up(agent, control)
    if not pairs:
        return Verdict("inconclusive", {"reason": "no endpoints"})
    doubts: list[Evidence] = []
    for layer in _LAYERS:
        outcome = layer(target, pairs, control, doubts)
        if isinstance(outcome, Verdict):
            return outcome
        pairs = outcome
    if doubts:
        return Verdict("inconclusive", doubts[0])
    return Verdict("ok")


def judge_chain(
    target: Target,
    agent: Vantage,
    control: Vantage | None,
    hops: Sequence[Hop] = (),
    *,
    online: bool | None = None,
    fingerprints: FingerprintSet | None = None,
) -> tuple[Verdict, Target | None]:
    """The verdict of a site test and the redirects it followed so far, and the next URL to
    measure (None: the chain ends here). The first hop that is not ``ok`` decides, with
    ``redirect_hop`` and ``redirect_host`` in its evidence when it is not the first URL."""
    verdict = decide(target, agent, control, online=online, fingerprints=fingerprints)
    for index, hop in enumerate(hops, 1):
        if verdict.verdict != "ok":
            return verdict, None
        try:
            hop_target = Target.parse(hop.url)
        except TargetError:
            return Verdict(
                "inconclusive", {"reason": "invalid hop URL", "redirect_hop": index}
            ), None
        hop_verdict = decide(hop_target, hop.agent, hop.control, fingerprints=fingerprints)
        verdict = chain.at_hop(hop_verdict, index, hop_target.host)
    if verdict.verdict != "ok":
        return verdict, None
    end = chain.chain_end(target, (agent, control), hops)
    if isinstance(end, Verdict):
        return end, None
    return verdict, end


def redecide(m: SiteMeasurement, fingerprints: FingerprintSet | None = None) -> Verdict:
    """The verdict of a stored measurement under the current rules: what reclassification runs."""
    if m.throttle is not None:
        return decide_throttle(m.throttle)
    if m.protocols is not None:
        return decide_protocols(m.protocols)
    if m.trace is not None:
        return decide_trace(m.trace)
    verdict, _ = judge_chain(
        Target.parse(m.url),
        m.agent,
        m.control,
        m.hops,
        online=m.online,
        fingerprints=fingerprints,
    )
    return verdict
