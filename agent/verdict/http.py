"""Agent verdict, HTTP: requests cut (with the Host swap telling a name from an IP trigger),
blockpages told by a fingerprint, and pages that only differ from the control's."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.model.observations import HTTPRoundTrip
from agent.verdict.judging import (
    Evidence,
    Failed,
    Pair,
    control_side,
    doubt,
    first_failure,
    judge,
    status_of,
    swap_trigger,
)

# fmt: off
# A clean close (FIN) right after the request, before any status, is EOF injection.
_HTTP_KINDS = {
    f.CONNECTION_RESET: "http.reset", f.CONNECTION_ABORTED: "http.reset",
    f.GENERIC_TIMEOUT: "http.timeout", f.EOF: "http.eof",
}
# fmt: on

_LENGTH_TOLERANCE = 0.3
# An error status is a page no visitor wanted; with no control page to compare it with, it
# may be the site's own or a challenge served to this address only.
_ERROR_STATUS = 400


def layer(
    target: Target, pairs: list[Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[Pair]:
    measured = [p for p in pairs if p.agent.http is not None]
    answered = [p for p in measured if status_of(p.agent.http) is not None]
    if measured and not answered:
        return judge(_HTTP_KINDS, [_failed(p, control) for p in measured], None)
    if control is None:
        for pair in measured:
            if status_of(pair.agent.http) is None:
                doubt(doubts, pair.agent.ip, first_failure(pair.agent, pair.agent.http) or "")
    diff: Verdict | None = None
    for pair in answered:
        page = pair.agent.http
        assert page is not None
        assert page.status is not None
        evidence: Evidence = {"ip": pair.agent.ip}
        if trigger := swap_trigger(pair.agent.http_benign, "host"):
            evidence["trigger"] = trigger
        if page.fingerprint is not None:
            return Verdict("http.blockpage", {**evidence, "fingerprint": page.fingerprint})
        reference = _control_page(pair, control)
        if reference is None:
            if control is None and page.status >= _ERROR_STATUS:
                doubts.append({**evidence, "status": page.status, "reason": "no control"})
            continue
        diff = diff or _compare(page, reference, evidence)
    return diff or pairs


def _failed(pair: Pair, control: Vantage | None) -> Failed:
    theirs = pair.control.http if pair.control is not None else None
    control_ok, control_failure = control_side(
        pair, control, status_of(theirs) is not None, first_failure(pair.control, theirs)
    )
    return Failed(
        pair.agent.ip,
        first_failure(pair.agent, pair.agent.http) or "",
        control_ok,
        control_failure,
        swap_trigger(pair.agent.http_benign, "host"),
    )


def _control_page(pair: Pair, control: Vantage | None) -> HTTPRoundTrip | None:
    if pair.control is not None and status_of(pair.control.http) is not None:
        return pair.control.http
    ends = control.endpoints if control is not None else ()
    return next((e.http for e in ends if status_of(e.http) is not None), None)


def _compare(page: HTTPRoundTrip, reference: HTTPRoundTrip, evidence: Evidence) -> Verdict | None:
    """``http.diff`` when the status or the title is not the control's, with what differs.

    Never a blockpage, however unlike the control's page: a CAPTCHA, a rate limit or a CDN
    error page served to the agent's address differs as much, and only a fingerprint names
    a censor. The length alone is no difference: dynamic pages vary in size.
    """
    status, title = page.status != reference.status, page.title != reference.title
    if not (status or title):
        return None
    longest = max(page.body_length, reference.body_length)
    length = abs(page.body_length - reference.body_length) / longest if longest else 0.0
    what = [name for name, differs in (("status", status), ("title", title)) if differs]
    if length > _LENGTH_TOLERANCE:
        what.append("length")
    found: Evidence = {**evidence, "reason": f"differs from control: {', '.join(what)}"}
    if page.status is not None and reference.status is not None:
        found |= {"status": page.status, "control_status": reference.status}
    found["title_differs"] = title
    if reference.body_length:
        found["length_ratio"] = round(page.body_length / reference.body_length, 2)
    return Verdict("http.diff", found)
