"""Agent verdict, TLS: handshakes cut (with the SNI swap telling a name from an IP trigger),
interception, told by the certificate, and certificates no browser accepts for anyone."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import TLSHandshake
from agent.verdict.judging import (
    Evidence,
    Failed,
    Pair,
    control_side,
    dns_failure,
    doubt,
    first_failure,
    judge,
    swap_trigger,
)

# fmt: off
# A handshake ended by an alert or garbage was still cut by someone: reset, not a new kind.
# A clean close (FIN) right after the ClientHello is EOF injection: ``tls.eof``.
_TLS_KINDS = {
    f.CONNECTION_RESET: "tls.reset", f.CONNECTION_ABORTED: "tls.reset",
    f.SSL_FAILED_HANDSHAKE: "tls.reset", f.GENERIC_TIMEOUT: "tls.timeout", f.EOF: "tls.eof",
}
# fmt: on


def layer(
    target: Target, pairs: list[Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[Pair]:
    if target.scheme != "https":
        return pairs
    failed: list[Failed] = []
    passed: list[Pair] = []
    for pair in pairs:
        mine = pair.agent.tls
        if mine is None or mine.failure is None:
            passed.append(pair)
            continue
        theirs = pair.control.tls if pair.control is not None else None
        control_ok, control_failure = control_side(
            pair,
            control,
            theirs is not None and theirs.failure is None,
            first_failure(pair.control, theirs),
        )
        trigger = swap_trigger(pair.agent.tls_benign, "sni")
        failed.append(Failed(pair.agent.ip, mine.failure, control_ok, control_failure, trigger))
    if not passed:
        return judge(_TLS_KINDS, failed, "ip")
    if control is None:
        for cut in failed:
            doubt(doubts, cut.ip, cut.failure)
    for pair in passed:
        if pair.agent.tls is not None and (mitm := _certificate(pair, control, doubts)):
            return mitm
    return passed


def _certificate(pair: Pair, control: Vantage | None, doubts: list[Evidence]) -> Verdict | None:
    """Interception, or a certificate broken for everyone, told by the agent's certificate
    against the control's; None when it tells neither and the walk goes on."""
    mine = pair.agent.tls
    assert mine is not None
    evidence: Evidence = {"ip": pair.agent.ip}
    if mine.issuer is not None:
        evidence["issuer"] = mine.issuer
    reason = mine.validation_failure or f.SSL_INVALID_CERTIFICATE
    theirs = _control_handshake(pair, control) if control is not None else None
    if theirs is None or theirs.failure is not None:
        if mine.validated:
            return None
        # The control failed before it saw a certificate: a failure it shares.
        shared = theirs.failure if theirs is not None else _control_failure(pair, control)
        if shared is not None:
            return Verdict("down", {**evidence, "failure": reason, "control_failure": shared})
        # No control to compare with: an untrusted issuer is what an interceptor shows, and
        # also what a site with its own private CA shows, so it decides nothing alone.
        doubt(doubts, pair.agent.ip, reason)
        return None
    if not theirs.validated:
        if mine.validated:
            return None
        if mine.leaf_sha256 != theirs.leaf_sha256 and mine.issuer != theirs.issuer:
            return Verdict("tls.mitm", {**evidence, "reason": f"issuer differs: {theirs.issuer}"})
        # The same bad certificate for everyone: expired, misnamed or from an unknown root.
        control_failure = theirs.validation_failure or f.SSL_INVALID_CERTIFICATE
        return Verdict("down", {**evidence, "failure": reason, "control_failure": control_failure})
    if not mine.validated:
        return Verdict("tls.mitm", {**evidence, "reason": mine.validation_failure or ""})
    if mine.leaf_sha256 != theirs.leaf_sha256 and mine.issuer != theirs.issuer:
        return Verdict("tls.mitm", {**evidence, "reason": f"issuer differs: {theirs.issuer}"})
    return None


def _control_handshake(pair: Pair, control: Vantage | None) -> TLSHandshake | None:
    """The control's handshake to compare with: at the same IP, else elsewhere; a completed
    one anywhere says more about the site's certificate than a failed one."""
    ends = control.endpoints if control is not None else ()
    same = pair.control.tls if pair.control is not None else None
    handshakes = [h for h in (same, *(e.tls for e in ends)) if h is not None]
    return next((h for h in handshakes if h.failure is None), next(iter(handshakes), None))


def _control_failure(pair: Pair, control: Vantage | None) -> str | None:
    """Why the control has no handshake to compare with, if it failed before TLS."""
    if control is None:
        return None
    if pair.control is not None and pair.control.tcp.failure is not None:
        return pair.control.tcp.failure
    return dns_failure(control) or next(
        (e.tcp.failure for e in control.endpoints if e.tcp.failure is not None), None
    )
