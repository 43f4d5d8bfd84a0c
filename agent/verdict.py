"""Agent layer 3, verdict: a pure function from two views of a target to a verdict.

``decide`` does no I/O and reads no clock or randomness, so the agent (to print an
answer) and the collector (to reclassify stored raw observations when the rules
improve) reach the same verdict from the same observations. It goes layer by layer,
DNS, TCP, TLS, HTTP, and stops at the first layer where the agent and the control
disagree. Without a control it decides from local evidence (injection, bogons,
fingerprints, the SNI and Host swaps) and says ``inconclusive`` where it cannot tell.
The rules, and why they are these, are in docs/design/002-verdicts.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.fingerprints import FingerprintSet
from agent.model import failures as f
from agent.model.bogons import is_bogon
from agent.model.measurement import SiteMeasurement, Target, Vantage, Verdict
from agent.model.observations import (
    DNSReply,
    EndpointObservation,
    HTTPRoundTrip,
    SystemResolution,
    TLSHandshake,
)

__all__ = ["VERDICTS", "decide"]

# fmt: off
VERDICTS = frozenset([
    "ok", "down", "offline", "inconclusive",
    "dns.nxdomain", "dns.servfail", "dns.refused", "dns.timeout",
    "dns.bogon", "dns.mismatch", "dns.injected",
    "tcp.timeout", "tcp.reset", "tcp.refused",
    "tls.reset", "tls.timeout", "tls.eof", "tls.mitm",
    "http.reset", "http.timeout", "http.eof", "http.blockpage", "http.diff",
])
# A NOERROR without addresses hides the site exactly as NXDOMAIN does.
_DNS_KINDS = {
    f.DNS_NXDOMAIN: "dns.nxdomain", f.DNS_NO_ANSWER: "dns.nxdomain",
    f.DNS_SERVFAIL: "dns.servfail", f.DNS_REFUSED: "dns.refused",
    f.GENERIC_TIMEOUT: "dns.timeout",
}
# An ICMP unreachable answering a SYN is an active refusal, like a RST (iptables REJECT).
_TCP_KINDS = {
    f.GENERIC_TIMEOUT: "tcp.timeout", f.CONNECTION_RESET: "tcp.reset",
    f.CONNECTION_ABORTED: "tcp.reset", f.CONNECTION_REFUSED: "tcp.refused",
    f.HOST_UNREACHABLE: "tcp.refused", f.NETWORK_UNREACHABLE: "tcp.refused",
}
# A handshake ended by an alert or garbage was still cut by someone: reset, not a new kind.
_TLS_KINDS = {
    f.CONNECTION_RESET: "tls.reset", f.CONNECTION_ABORTED: "tls.reset",
    f.SSL_FAILED_HANDSHAKE: "tls.reset", f.GENERIC_TIMEOUT: "tls.timeout", f.EOF: "tls.eof",
}
_HTTP_KINDS = {
    f.CONNECTION_RESET: "http.reset", f.CONNECTION_ABORTED: "http.reset",
    f.GENERIC_TIMEOUT: "http.timeout", f.EOF: "http.eof",
}
# fmt: on

Evidence = dict[str, str | int | float | bool]

_MAX_LISTED = 4  # addresses in evidence: enough to show the answer, small on the wire
_LENGTH_TOLERANCE = 0.3


@dataclass(frozen=True)
class _Pair:
    agent: EndpointObservation
    control: EndpointObservation | None  # the control's endpoint at the same IP


@dataclass(frozen=True)
class _Failed:
    ip: str
    failure: str
    control_ok: bool | None  # None: nothing to compare with
    control_failure: str | None
    trigger: str | None  # from the SNI or Host swap, when one ran


# A layer of the endpoint walk: a verdict, or the pairs that passed it on to the next layer.
# ``doubts`` collects what keeps a no-control walk that ends well from being called ok.
_Layer = Callable[[Target, list["_Pair"], Vantage | None, list[Evidence]], "Verdict | list[_Pair]"]


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
    dns_verdict = (
        _injection(agent, control)
        or _resolution(agent, control)
        or _answers(target, agent, control, fingerprints)
    )
    if dns_verdict is not None:
        return dns_verdict
    pairs = _pairs(agent, control)
    if not pairs:
        return Verdict("inconclusive", {"reason": "no endpoints"})
    doubts: list[Evidence] = []
    layers: tuple[_Layer, ...] = (_tcp, _tls, _http)
    for layer in layers:
        outcome = layer(target, pairs, control, doubts)
        if isinstance(outcome, Verdict):
            return outcome
        pairs = outcome
    if doubts:
        return Verdict("inconclusive", doubts[0])
    return Verdict("ok")


# DNS


def redecide(m: SiteMeasurement, fingerprints: FingerprintSet | None = None) -> Verdict:
    """The verdict of a stored measurement under the current rules: what reclassification runs."""
    return decide(
        Target.parse(m.url), m.agent, m.control, online=m.online, fingerprints=fingerprints
    )


def _injection(agent: Vantage, control: Vantage | None) -> Verdict | None:
    known = set(control.dns.system.addresses) if control is not None else set()
    for exchange in agent.dns.public:
        replies = exchange.replies
        if len({_answer_key(r) for r in replies}) < 2:
            continue
        # Forged replies race ahead, so the last is the real one, unless the control says
        # otherwise by sharing more addresses with an earlier reply.
        _, real = max(enumerate(replies), key=lambda ir: (len(known & set(ir[1].addresses)), ir[0]))
        forged = [r for r in replies if _answer_key(r) != _answer_key(real)]
        evidence: Evidence = {"ip": exchange.server}
        answers = [a for r in forged for a in r.addresses if a not in real.addresses]
        if answers := [a for a in dict.fromkeys(answers) if a not in known]:
            evidence["injected_answers"] = _listed(answers)
        else:
            evidence["reason"] = f"forged {forged[0].rcode}"
        if forged[0].ip_ttl is not None and real.ip_ttl is not None:
            evidence["ttl_diff"] = forged[0].ip_ttl - real.ip_ttl
        return Verdict("dns.injected", evidence)
    return None


def _answer_key(reply: DNSReply) -> tuple[str, frozenset[str]]:
    return reply.rcode, frozenset(reply.addresses)


def _resolved(system: SystemResolution) -> bool:
    return system.failure is None and bool(system.addresses)


def _resolution(agent: Vantage, control: Vantage | None) -> Verdict | None:
    system = agent.dns.system
    if _resolved(system):
        return None
    failure = system.failure or f.DNS_NO_ANSWER
    kind = _DNS_KINDS.get(failure)
    if control is not None:
        if not _resolved(control.dns.system):
            return _same_failure(failure, control.dns.system.failure or f.DNS_NO_ANSWER)
    elif not any(r.addresses for e in agent.dns.public for r in e.replies):
        return _inconclusive(failure, "no control, and no public resolver answered")
    if kind is None:
        return _inconclusive(failure, "unclassified resolver failure")
    return Verdict(kind, {"trigger": "resolver", "failure": failure})


def _answers(
    target: Target, agent: Vantage, control: Vantage | None, fingerprints: FingerprintSet | None
) -> Verdict | None:
    addresses = agent.dns.system.addresses
    known = set(control.dns.system.addresses) if control is not None else set()
    match = fingerprints.match_dns(addresses) if fingerprints is not None else None
    evidence: Evidence = {"trigger": "resolver"}
    if match is not None and not match.false_positive:
        evidence["fingerprint"] = match.fingerprint.name
    if bogons := [a for a in addresses if is_bogon(a) and a not in known]:
        return Verdict("dns.bogon", {**evidence, "addresses": _listed(bogons)})
    evidence["addresses"] = _listed(addresses)
    if "fingerprint" in evidence and not set(addresses) <= known:
        return Verdict("dns.mismatch", evidence)
    if control is not None:
        reference = known
    else:
        # With no control the public resolvers' real answers are the best outside view.
        reference = {a for e in agent.dns.public if e.replies for a in e.replies[-1].addresses}
    if not reference or not reference.isdisjoint(addresses):
        return None
    found = _redirect_evidence(target, agent, control, set(addresses), reference)
    return None if found is None else Verdict("dns.mismatch", {**evidence, **found})


def _redirect_evidence(
    target: Target, agent: Vantage, control: Vantage | None, own: set[str], reference: set[str]
) -> Evidence | None:
    """What shows that the resolver's other addresses do not serve the site, if anything.

    Any of them serving it (a validating certificate, the control's page) makes the
    difference a CDN variation, and the decision moves on to the later layers.
    """
    real = [e for e in (control.endpoints if control is not None else ()) if e.ip in reference]
    pages = [e.http for e in real if e.http is not None and e.http.status is not None]
    site_reachable = any(e.tcp.failure is None for e in agent.endpoints if e.ip in reference)
    site_reachable = site_reachable or any(e.tcp.failure is None for e in real)
    found: Evidence | None = None
    for end in (e for e in agent.endpoints if e.ip in own):
        evidence: Evidence = {"ip": end.ip}
        page, handshake = end.http, end.tls if target.scheme == "https" else None
        if page is not None and page.fingerprint is not None:
            evidence["fingerprint"] = page.fingerprint
        elif handshake is not None and handshake.failure is None and not handshake.validated:
            evidence["reason"] = "certificate"
            evidence["failure"] = handshake.validation_failure or f.SSL_INVALID_CERTIFICATE
        elif handshake is not None and handshake.failure is None:
            return None
        elif control is None:
            continue
        elif handshake is not None and not _swap_worked(end.tls_benign):
            evidence["reason"] = "tls"
            evidence["failure"] = handshake.failure or ""
        elif page is not None and page.status is not None and pages:
            if not _differs(page, pages):
                return None
            evidence["reason"] = "http"
        elif end.tcp.failure is not None and site_reachable:
            evidence["reason"] = "tcp"
            evidence["failure"] = end.tcp.failure
        else:
            continue
        found = found or evidence
    return found


def _differs(page: HTTPRoundTrip, pages: Sequence[HTTPRoundTrip]) -> bool:
    return all(page.status != p.status or page.title != p.title for p in pages)


# Endpoints: TCP, TLS, HTTP. Each layer returns a verdict, or the pairs that passed it.


def _pairs(agent: Vantage, control: Vantage | None) -> list[_Pair]:
    if control is None:
        return [_Pair(e, None) for e in agent.endpoints]
    theirs: dict[str, EndpointObservation] = {}
    for end in control.endpoints:
        theirs.setdefault(end.ip, end)
    shared = [_Pair(e, theirs[e.ip]) for e in agent.endpoints if e.ip in theirs]
    # The control measured none of these IPs: judge them on local evidence.
    return shared or [_Pair(e, None) for e in agent.endpoints]


def _tcp(
    target: Target, pairs: list[_Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[_Pair]:
    connected = [p for p in pairs if p.agent.tcp.failure is None]
    if connected:
        return connected
    failed = [
        _Failed(
            p.agent.ip,
            p.agent.tcp.failure or "",
            None if p.control is None else p.control.tcp.failure is None,
            None if p.control is None else p.control.tcp.failure,
            None,
        )
        for p in pairs
    ]
    return _judge(_TCP_KINDS, failed, "ip")


def _tls(
    target: Target, pairs: list[_Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[_Pair]:
    if target.scheme != "https":
        return pairs
    failed: list[_Failed] = []
    passed: list[_Pair] = []
    for pair in pairs:
        mine = pair.agent.tls
        if mine is None or mine.failure is None:
            passed.append(pair)
            continue
        theirs = pair.control.tls if pair.control is not None else None
        failed.append(
            _Failed(
                pair.agent.ip,
                mine.failure,
                None if pair.control is None else theirs is not None and theirs.failure is None,
                _first_failure(pair.control, theirs),
                _swap_trigger(pair.agent.tls_benign, "sni"),
            )
        )
    if not passed:
        return _judge(_TLS_KINDS, failed, "ip")
    for pair in passed:
        if pair.agent.tls is not None and (mitm := _mitm(pair, control, doubts)) is not None:
            return mitm
    return passed


def _mitm(pair: _Pair, control: Vantage | None, doubts: list[Evidence]) -> Verdict | None:
    mine = pair.agent.tls
    assert mine is not None
    evidence: Evidence = {"ip": pair.agent.ip}
    if mine.issuer is not None:
        evidence["issuer"] = mine.issuer
    if control is None:
        if mine.validated:
            return None
        reason = mine.validation_failure or f.SSL_INVALID_CERTIFICATE
        # An untrusted issuer is what an interceptor shows; an expired or misnamed
        # certificate is as likely the site's own mistake, which only a control can tell.
        if reason == f.SSL_UNKNOWN_AUTHORITY:
            return Verdict("tls.mitm", {**evidence, "reason": reason})
        doubts.append({"ip": pair.agent.ip, "failure": reason, "reason": "no control"})
        return None
    theirs = _control_handshake(pair, control)
    if theirs is None or not theirs.validated:
        return None
    if not mine.validated:
        return Verdict("tls.mitm", {**evidence, "reason": mine.validation_failure or ""})
    if mine.leaf_sha256 != theirs.leaf_sha256 and mine.issuer != theirs.issuer:
        return Verdict("tls.mitm", {**evidence, "reason": f"issuer differs: {theirs.issuer}"})
    return None


def _control_handshake(pair: _Pair, control: Vantage) -> TLSHandshake | None:
    if pair.control is not None and pair.control.tls is not None:
        return pair.control.tls
    return next((e.tls for e in control.endpoints if e.tls is not None), None)


def _http(
    target: Target, pairs: list[_Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[_Pair]:
    measured = [p for p in pairs if p.agent.http is not None]
    answered = [p for p in measured if _status(p.agent.http) is not None]
    if measured and not answered:
        failed = []
        for pair in measured:
            theirs = pair.control.http if pair.control is not None else None
            failed.append(
                _Failed(
                    pair.agent.ip,
                    _first_failure(pair.agent, pair.agent.http) or "",
                    None if pair.control is None else _status(theirs) is not None,
                    _first_failure(pair.control, theirs),
                    _swap_trigger(pair.agent.http_benign, "host"),
                )
            )
        return _judge(_HTTP_KINDS, failed, None)
    diff: Verdict | None = None
    for pair in answered:
        page = pair.agent.http
        assert page is not None
        evidence: Evidence = {"ip": pair.agent.ip}
        if trigger := _swap_trigger(pair.agent.http_benign, "host"):
            evidence["trigger"] = trigger
        if page.fingerprint is not None:
            return Verdict("http.blockpage", {**evidence, "fingerprint": page.fingerprint})
        reference = _control_page(pair, control)
        compared = None if reference is None else _compare(page, reference, evidence)
        if compared is not None and compared.verdict == "http.blockpage":
            return compared
        diff = diff or compared
    return diff or pairs


def _control_page(pair: _Pair, control: Vantage | None) -> HTTPRoundTrip | None:
    if pair.control is not None and _status(pair.control.http) is not None:
        return pair.control.http
    ends = control.endpoints if control is not None else ()
    return next((e.http for e in ends if _status(e.http) is not None), None)


def _compare(page: HTTPRoundTrip, reference: HTTPRoundTrip, evidence: Evidence) -> Verdict | None:
    status, title = page.status != reference.status, page.title != reference.title
    longest = max(page.body_length, reference.body_length)
    length = abs(page.body_length - reference.body_length) / longest if longest else 0.0
    if status and title and length > _LENGTH_TOLERANCE:
        return Verdict("http.blockpage", {**evidence, "reason": "differs from control"})
    if status or title:
        what = "status" if status else "title"
        return Verdict("http.diff", {**evidence, "reason": f"{what} differs from control"})
    return None


# Shared helpers


def _status(page: HTTPRoundTrip | None) -> int | None:
    return None if page is None else page.status


def _first_failure(
    end: EndpointObservation | None, last: TLSHandshake | HTTPRoundTrip | None
) -> str | None:
    """The failure that stopped an endpoint at or before the layer that ``last`` belongs to."""
    if end is None:
        return None
    for step in (end.tcp, end.tls, last):
        if step is not None and step.failure is not None:
            return step.failure
    return None


def _swap_worked(swap: TLSHandshake | HTTPRoundTrip | None) -> bool:
    if isinstance(swap, HTTPRoundTrip):
        return swap.status is not None and swap.fingerprint is None
    return swap is not None and swap.failure is None


def _swap_trigger(swap: TLSHandshake | HTTPRoundTrip | None, name: str) -> str | None:
    """The swap's conclusion: the name triggers the censor, or the IP does; None if none ran."""
    if swap is None:
        return None
    return name if _swap_worked(swap) else "ip"


def _judge(kinds: Mapping[str, str], failed: Sequence[_Failed], default: str | None) -> Verdict:
    """Every endpoint failed at this layer: blocked, down, or no way to tell."""
    blocked = next((x for x in failed if x.control_ok), None)
    if blocked is None and not any(x.control_ok is False for x in failed):
        # No control to compare with: only a swap that worked is local evidence.
        blocked = next((x for x in failed if x.trigger not in (None, "ip")), None)
        if blocked is None:
            return _inconclusive(failed[0].failure, "no control to compare with")
    if blocked is None:
        compared = [x for x in failed if x.control_ok is False]
        return _same_failure(compared[0].failure, *(x.control_failure or "" for x in compared))
    kind = kinds.get(blocked.failure)
    if kind is None:
        return _inconclusive(blocked.failure, "unclassified failure")
    evidence: Evidence = {"failure": blocked.failure, "ip": blocked.ip}
    if trigger := blocked.trigger or default:
        evidence["trigger"] = trigger
    return Verdict(kind, evidence)


def _same_failure(failure: str, *control_failures: str) -> Verdict:
    evidence: Evidence = {"failure": failure, "control_failure": control_failures[0]}
    if all(c == failure for c in control_failures):
        return Verdict("down", evidence)
    return Verdict("inconclusive", {**evidence, "reason": "the control failed differently"})


def _inconclusive(failure: str, reason: str) -> Verdict:
    return Verdict("inconclusive", {"failure": failure, "reason": reason})


def _listed(addresses: Iterable[str]) -> str:
    return ",".join(list(addresses)[:_MAX_LISTED])
