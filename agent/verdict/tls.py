"""Agent verdict, TLS: handshakes cut (with the SNI swap telling a name from an IP trigger),
and interception, told by the certificate."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import TLSHandshake
from agent.verdict.judging import Evidence, Failed, Pair, first_failure, judge, swap_trigger

# fmt: off
# A handshake ended by an alert or garbage was still cut by someone: reset, not a new kind.
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
        failed.append(
            Failed(
                pair.agent.ip,
                mine.failure,
                None if pair.control is None else theirs is not None and theirs.failure is None,
                first_failure(pair.control, theirs),
                swap_trigger(pair.agent.tls_benign, "sni"),
            )
        )
    if not passed:
        return judge(_TLS_KINDS, failed, "ip")
    for pair in passed:
        if pair.agent.tls is not None and (mitm := _mitm(pair, control, doubts)) is not None:
            return mitm
    return passed


def _mitm(pair: Pair, control: Vantage | None, doubts: list[Evidence]) -> Verdict | None:
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


def _control_handshake(pair: Pair, control: Vantage) -> TLSHandshake | None:
    if pair.control is not None and pair.control.tls is not None:
        return pair.control.tls
    return next((e.tls for e in control.endpoints if e.tls is not None), None)
