"""Agent verdict, HTTP: requests cut (with the Host swap telling a name from an IP trigger),
blockpages by fingerprint or by their distance from the control's page, and smaller
differences from it."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import HTTPRoundTrip
from agent.verdict.judging import (
    Evidence,
    Failed,
    Pair,
    first_failure,
    judge,
    status_of,
    swap_trigger,
)

# fmt: off
_HTTP_KINDS = {
    f.CONNECTION_RESET: "http.reset", f.CONNECTION_ABORTED: "http.reset",
    f.GENERIC_TIMEOUT: "http.timeout", f.EOF: "http.eof",
}
# fmt: on

_LENGTH_TOLERANCE = 0.3


def layer(
    target: Target, pairs: list[Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[Pair]:
    measured = [p for p in pairs if p.agent.http is not None]
    answered = [p for p in measured if status_of(p.agent.http) is not None]
    if measured and not answered:
        failed = []
        for pair in measured:
            theirs = pair.control.http if pair.control is not None else None
            failed.append(
                Failed(
                    pair.agent.ip,
                    first_failure(pair.agent, pair.agent.http) or "",
                    None if pair.control is None else status_of(theirs) is not None,
                    first_failure(pair.control, theirs),
                    swap_trigger(pair.agent.http_benign, "host"),
                )
            )
        return judge(_HTTP_KINDS, failed, None)
    diff: Verdict | None = None
    for pair in answered:
        page = pair.agent.http
        assert page is not None
        evidence: Evidence = {"ip": pair.agent.ip}
        if trigger := swap_trigger(pair.agent.http_benign, "host"):
            evidence["trigger"] = trigger
        if page.fingerprint is not None:
            return Verdict("http.blockpage", {**evidence, "fingerprint": page.fingerprint})
        reference = _control_page(pair, control)
        compared = None if reference is None else _compare(page, reference, evidence)
        if compared is not None and compared.verdict == "http.blockpage":
            return compared
        diff = diff or compared
    return diff or pairs


def _control_page(pair: Pair, control: Vantage | None) -> HTTPRoundTrip | None:
    if pair.control is not None and status_of(pair.control.http) is not None:
        return pair.control.http
    ends = control.endpoints if control is not None else ()
    return next((e.http for e in ends if status_of(e.http) is not None), None)


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
