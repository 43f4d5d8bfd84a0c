"""Agent verdict: where a trace found the censor, and how it injects (pure).

``decide_trace`` turns a trace (``agent.model.trace``) into a verdict of the same taxonomy
as the site test: the last attempt, the trigger sent with the normal TTL, says what the
censor does (a reset after a ClientHello is ``tls.reset``, silence after a SYN
``tcp.timeout``...), and the TTL-limited attempts say where. Its evidence:

- ``censor_ttl``: the smallest TTL at which the trigger met what the benign swap did not
  (``agent.model.trace.censored``, every pair sent at that TTL agreeing);
- ``after_hop``: the last router below it that answered time-exceeded, and ``routers``, the
  routers at TTL 1 .. censor_ttl - 1 in order (``*`` for a silent one);
- ``path``: ``on`` when the genuine server's answer still came after the injected packet
  (the injector could not drop the trigger), else ``in``;
- ``injected``: the injected packet's IP TTL and IP ID beside a genuine packet's from the
  same host (``injected_ttl``, ``server_ttl``), which is how injected packets give
  themselves away.

A trace whose last attempt went through is ``ok`` (the block did not recur); one that could
not run, or could not connect at all, is ``inconclusive``. What a trace cannot prove is in
docs/design/013-trace.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.model import trace as t
from agent.model.measurement import Verdict
from agent.model.trace import TraceAttempt, TraceObservation, TracePacket
from agent.verdict.judging import Evidence

__all__ = ["REACTION_VERDICTS", "decide_trace", "locate"]

# The verdict of the last attempt's reaction, by trigger: the site test's names for the same.
REACTION_VERDICTS = {
    ("sni", t.RESET): "tls.reset",
    ("sni", t.FIN): "tls.eof",
    ("sni", t.SILENT): "tls.timeout",
    ("host", t.RESET): "http.reset",
    ("host", t.FIN): "http.eof",
    ("host", t.SILENT): "http.timeout",
    ("ip", t.RESET): "tcp.refused",
    ("ip", t.SILENT): "tcp.timeout",
    ("ip", t.EXCEEDED): "tcp.timeout",
    ("ip", t.UNREACHABLE): "tcp.timeout",
}
_INJECTED = frozenset((t.RESET, t.FIN, t.DATA))
ROUTERS_LIMIT = 256  # agent.wire.codec.Evidence: the longest text an evidence value holds


def _by_ttl(attempts: Sequence[TraceAttempt]) -> dict[int, list[TraceAttempt]]:
    found: dict[int, list[TraceAttempt]] = {}
    for a in attempts:
        if a.ttl != t.FULL_TTL:
            found.setdefault(a.ttl, []).append(a)
    return found


def _censored_at(attempts: list[TraceAttempt]) -> bool:
    triggers = [a for a in attempts if a.trigger]
    benigns = [a for a in attempts if not a.trigger]
    pairs = list(zip(triggers, benigns, strict=False))
    return bool(pairs) and all(t.censored(trig, ben) for trig, ben in pairs)


def locate(obs: TraceObservation) -> Evidence | None:
    """``censor_ttl``, ``after_hop``, ``routers`` and the reaction there, or None when no TTL
    shows a censor."""
    by_ttl = _by_ttl(obs.attempts)
    censor = next((ttl for ttl in sorted(by_ttl) if _censored_at(by_ttl[ttl])), None)
    if censor is None:
        return None
    routers = []
    for ttl in range(1, censor):
        named = [a.router for a in by_ttl.get(ttl, []) if a.reaction == t.EXCEEDED and a.router]
        routers.append(named[0] if named else "*")
    evidence: Evidence = {"censor_ttl": censor}
    after = next((r for r in reversed(routers) if r != "*"), None)
    if after is not None:
        evidence["after_hop"] = after
    evidence["routers"] = _listed(routers)
    reaction = next(a for a in by_ttl[censor] if a.trigger).reaction
    evidence["reaction"] = reaction
    return evidence


def _listed(routers: list[str]) -> str:
    """The routers as evidence carries them: the nearest the censor when they do not all fit
    (evidence texts are at most 256 characters: sixteen IPv4 or six IPv6 addresses fit)."""
    if len(" ".join(routers)) <= ROUTERS_LIMIT:
        return " ".join(routers)
    kept: list[str] = []
    for router in reversed(routers):
        if len(" ".join(["...", router, *kept])) > ROUTERS_LIMIT:
            return " ".join(["...", *kept])
        kept.insert(0, router)
    return " ".join(kept)


def _last(obs: TraceObservation) -> TraceAttempt | None:
    return next((a for a in reversed(obs.attempts) if a.ttl == t.FULL_TTL and a.trigger), None)


def _injected(last: TraceAttempt) -> tuple[int, TracePacket] | None:
    """The injected packet on the last attempt's flow (its index), for an injected reaction."""
    kind = {t.RESET: "rst", t.FIN: "fin", t.DATA: "data"}.get(last.reaction)
    return next(((i, p) for i, p in enumerate(last.packets) if p.kind == kind), None)


def _genuine(obs: TraceObservation, injected: TracePacket) -> tuple[TracePacket, int] | None:
    """A packet that stands for the genuine host: the first reference whose packet does not
    look like the injected one (a censor that resets every flow to the address resets the
    reference to it too), with its port."""
    for ref in obs.references:
        p = ref.packet
        if p is not None and (p.ttl, p.ip_id) != (injected.ttl, injected.ip_id):
            return p, ref.port
    return None


def _forensics(obs: TraceObservation, last: TraceAttempt) -> Evidence:
    found = _injected(last)
    if found is None:
        return {"path": "in"}
    index, injected = found
    # On-path: a data packet after the injected one that another sender's TTL gave away.
    later = last.packets[index + 1 :]
    on = any(p.kind == "data" and p.ttl != injected.ttl for p in later)
    evidence: Evidence = {"path": "on" if on else "in", "injected_ttl": injected.ttl}
    text = f"{injected.kind} ttl={injected.ttl} id={_id(injected)}"
    genuine = _genuine(obs, injected)
    if genuine is not None:
        packet, port = genuine
        evidence["server_ttl"] = packet.ttl
        text += f"; server ttl={packet.ttl} id={_id(packet)} (port {port})"
    evidence["injected"] = text
    return evidence


def _id(packet: TracePacket) -> str:
    return "-" if packet.ip_id is None else str(packet.ip_id)


def _blocked_name(obs: TraceObservation, last: TraceAttempt) -> str | None:
    if last.reaction == t.DATA:
        blockpage = obs.trigger == "host" and last.fingerprint is not None
        return "http.blockpage" if blockpage else None
    return REACTION_VERDICTS.get((obs.trigger, last.reaction))


def decide_trace(obs: TraceObservation) -> Verdict:
    """The verdict of one trace; total and deterministic."""
    if obs.failure is not None:
        reason = "broke off" if obs.attempts else "not run"
        return Verdict("inconclusive", {"reason": reason, "failure": obs.failure})
    last = _last(obs)
    if last is None or last.reaction == t.NO_CONNECTION:
        return Verdict("inconclusive", {"reason": "no connection", "trigger": obs.trigger})
    name = _blocked_name(obs, last)
    located = locate(obs)
    evidence: Evidence = {"trigger": obs.trigger}
    if name is None:
        through = last.reaction in (t.DATA, t.SYN_ACK)
        if located is None and through:
            return Verdict("ok", evidence)
        evidence.update(located or {})
        what = "went through" if through else f"met {last.reaction}"
        evidence["reason"] = f"{'located, but ' if located else ''}the last attempt {what}"
        return Verdict("inconclusive", evidence)
    if located is None:
        evidence["reason"] = "not located"
        return Verdict(name, evidence)
    evidence.update(located)
    if last.reaction in _INJECTED or last.reaction == t.SILENT:
        evidence.update(_forensics(obs, last))
    return Verdict(name, evidence)
