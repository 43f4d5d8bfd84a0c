"""Agent verdict, DNS: injected replies, resolver failures, and answers that are not the site's.

The first layer the verdict looks at, and the only one that looks at the resolvers: a
verdict here ends the walk before any endpoint is judged. An IP-literal target asked no
resolver, so this layer has nothing to say about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.fingerprints import FingerprintSet
from agent.model import failures as f
from agent.model.addresses import is_address, is_bogon
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import DNSReply, HTTPRoundTrip, SystemResolution
from agent.verdict.judging import (
    Evidence,
    dns_failure,
    inconclusive,
    listed,
    same_failure,
    swap_worked,
)

# fmt: off
# A NOERROR without addresses hides the site exactly as NXDOMAIN does.
_DNS_KINDS = {
    f.DNS_NXDOMAIN: "dns.nxdomain", f.DNS_NO_ANSWER: "dns.nxdomain",
    f.DNS_SERVFAIL: "dns.servfail", f.DNS_REFUSED: "dns.refused",
    f.GENERIC_TIMEOUT: "dns.timeout",
}
# fmt: on


def verdict(
    target: Target, agent: Vantage, control: Vantage | None, fingerprints: FingerprintSet | None
) -> Verdict | None:
    """The DNS verdict, or None when the resolver's answer lets the endpoints decide."""
    if is_address(target.host):
        # The "answer" is the target itself: a private literal is no resolver's bogon.
        return None
    return (
        _injection(agent, control)
        or _resolution(agent, control)
        or _answers(target, agent, control, fingerprints)
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
            evidence["injected_answers"] = listed(answers)
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


def _no_public_address(control: Vantage | None) -> bool:
    """The control's resolver answered, but only with addresses it may not reach, which it
    dropped from its answer: the name points into private space from outside too."""
    return control is not None and control.dns.system.failure == f.DNS_NON_PUBLIC_ANSWER


def _resolution(agent: Vantage, control: Vantage | None) -> Verdict | None:
    system = agent.dns.system
    if _resolved(system):
        return None
    failure = system.failure or f.DNS_NO_ANSWER
    kind = _DNS_KINDS.get(failure)
    if control is not None:
        # The control got nothing to connect to either (no such name, no answer, or only
        # private addresses): the name fails for everyone.
        if (theirs := dns_failure(control)) is not None:
            return same_failure(failure, theirs)
    elif not any(r.addresses for e in agent.dns.public for r in e.replies):
        return inconclusive(failure, "no control, and no public resolver answered")
    if kind is None:
        return inconclusive(failure, "unclassified resolver failure")
    return Verdict(kind, {"trigger": "resolver", "failure": failure})


def _answers(
    target: Target, agent: Vantage, control: Vantage | None, fingerprints: FingerprintSet | None
) -> Verdict | None:
    addresses = agent.dns.system.addresses
    # The outside view: the control's answer; with no control, the public resolvers' real one.
    if control is not None:
        known = set(control.dns.system.addresses)
    else:
        known = {a for e in agent.dns.public if e.replies for a in e.replies[-1].addresses}
    match = fingerprints.match_dns(addresses) if fingerprints is not None else None
    evidence: Evidence = {"trigger": "resolver"}
    if match is not None and not match.false_positive:
        evidence["fingerprint"] = match.fingerprint.name
    if (bogon := _bogon(addresses, control, known, evidence)) is not None:
        return bogon
    evidence["addresses"] = listed(addresses)
    nowhere = _nowhere(agent, control)
    if "fingerprint" in evidence and _fingerprint_decides(addresses, control, known):
        return Verdict("dns.mismatch", {**evidence, **(nowhere or {})})
    if nowhere is not None:
        return _ghost(agent, evidence, nowhere)
    if not known or not known.isdisjoint(addresses):
        return None
    found = _redirect_evidence(target, agent, control, set(addresses), known)
    return None if found is None else Verdict("dns.mismatch", {**evidence, **found})


def _bogon(
    addresses: Sequence[str], control: Vantage | None, known: set[str], evidence: Evidence
) -> Verdict | None:
    """A private answer the resolver made up, or None when it is the name's own.

    A bogon beside the outside view's own addresses hides nothing (the site also publishes
    one, which the control drops); nor does one when the control got only private ones, or,
    with no control, one the public resolvers answer too (sites parked on 127.0.0.1 are
    common in test lists, and a fingerprint of 127.0.0.1 cannot tell them from a censor).
    """
    bogons = [a for a in addresses if is_bogon(a) and a not in known]
    if not bogons or not known.isdisjoint(addresses) or _no_public_address(control):
        return None
    return Verdict("dns.bogon", {**evidence, "addresses": listed(bogons)})


def _fingerprint_decides(
    addresses: Sequence[str], control: Vantage | None, known: set[str]
) -> bool:
    """Whether a DNS fingerprint on the answer names a censor: not when the outside view
    got the same addresses, nor private ones only. With no control, a public blockpage
    server's address decides even when the public resolvers answer it too (a censor can
    hijack them all), a bogon the bogon rule let pass does not."""
    if _no_public_address(control):
        return False
    if not set(addresses) <= known:
        return True
    return control is None and not any(is_bogon(a) for a in addresses)


def _nowhere(agent: Vantage, control: Vantage | None) -> Evidence | None:
    """What says the name exists nowhere but at the agent's resolver: the control's failed
    resolution, or, with no control, public resolvers that all answered without addresses."""
    if control is not None:
        theirs = dns_failure(control)
        # Private addresses only are an answer: the name exists, just not in public.
        if theirs is None or theirs == f.DNS_NON_PUBLIC_ANSWER:
            return None
        return {"control_failure": theirs}
    last = [e.replies[-1] for e in agent.dns.public if e.replies]
    if not last or any(r.addresses for r in last):
        return None
    return {"public_rcode": last[0].rcode}


def _ghost(agent: Vantage, evidence: Evidence, nowhere: Evidence) -> Verdict:
    """Ghost DNS: the agent's resolver answers a name that exists nowhere else. A blockpage
    at that answer names the censor; anything else may be the ISP's search page for unknown
    names, or a name that only resolves inside the country, and is no evidence either way."""
    own = set(agent.dns.system.addresses)
    for end in agent.endpoints:
        if end.ip in own and end.http is not None and end.http.fingerprint is not None:
            found = {"ip": end.ip, "fingerprint": end.http.fingerprint}
            return Verdict("dns.mismatch", {**evidence, **nowhere, **found})
    reason = "only the agent's resolver knows the name"
    return Verdict(
        "inconclusive", {"addresses": evidence["addresses"], **nowhere, "reason": reason}
    )


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
        elif handshake is not None and not swap_worked(end.tls_benign):
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
