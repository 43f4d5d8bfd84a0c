"""Agent API, the enrolment client: trades a one-time token and a public key for an agent id.

``POST /api/v1/enroll`` with JSON ``{"token", "public_key"}`` (base64 of the raw 32 bytes);
the collector answers 201 ``{"agent_id"}``, or a 4xx whose ``error`` says why. Everything
that goes wrong raises :class:`EnrollError`, whose message is meant for the volunteer; an
answer is read up to ``MAX_ANSWER_BYTES`` and no further.
"""

from __future__ import annotations

import base64

from agent.api.client import (
    MAX_ANSWER_BYTES,
    REQUEST_FAILURES,
    json_or_none,
    open_session,
    read_capped,
    trust,
)
from agent.api.errors import CollectorError, failure_reason
from agent.api.paths import ENROLL_PATH

__all__ = ["EnrollError", "request_enrollment"]


class EnrollError(CollectorError):
    """The collector did not enrol this agent."""


async def request_enrollment(
    collector_url: str,
    token: str,
    public_key: bytes,
    *,
    ca_file: str | None = None,
    timeout: float = 30.0,
) -> str:
    """The agent id the collector at ``collector_url`` gave this key."""
    url = collector_url.rstrip("/")
    payload = {"token": token, "public_key": base64.b64encode(public_key).decode()}
    context = trust(ca_file)  # outside the try: a bad CA file is not an unreachable collector
    try:
        async with (
            open_session(context, timeout) as session,
            session.post(url + ENROLL_PATH, json=payload) as resp,
        ):
            status = resp.status
            answer = await read_capped(resp, MAX_ANSWER_BYTES)
    except REQUEST_FAILURES as exc:
        raise EnrollError(f"cannot reach the collector at {url}: {failure_reason(exc)}") from None
    if answer is None:
        raise EnrollError(f"the collector at {url} answered over {MAX_ANSWER_BYTES} bytes")
    body = json_or_none(answer)
    if status != 201:
        message = body.get("error") if isinstance(body, dict) else None
        detail = message if isinstance(message, str) else f"HTTP {status}"
        raise EnrollError(f"the collector at {url} refused the enrolment: {detail}")
    agent_id = body.get("agent_id") if isinstance(body, dict) else None
    if not isinstance(agent_id, str) or not agent_id:
        raise EnrollError(f"the collector at {url} answered 201 without an agent_id")
    return agent_id
