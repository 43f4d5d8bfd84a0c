"""Collector web layer: the query API's parameters, parsed and checked.

Every query route takes the same filters (``cc``, ``asn``, ``domain``, ``since``, ``until``).
Anything but what a route documents is refused with :class:`BadParam`, a 400 naming the
parameter, before any of it reaches the storage: unknown or repeated parameters, values over
their length, numbers in anything but ASCII digits or outside their range. Times come in as
Unix milliseconds or ISO 8601.

Strict because a value that slipped through used to reach ``int()`` or the database and end
as a 500 ("²" passes ``str.isdigit``; 20-digit numbers overflow a 64-bit column; 4,301
digits overflow ``int()`` itself; security audit, issue 21), and because a mistyped filter
silently widening the answer is worse than an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from multidict import MultiMapping

from agent.model.measurement import Target
from collector.errors import ApiError
from collector.storage.queries import MAX_PAGE, BadCursor, MeasurementFilter, decode_cursor
from collector.storage.schema import DAY_MS, HOUR_MS, MAX_AGENT_ID, MAX_VERDICT

DEFAULT_PAGE = 100
BUCKETS = {"hour": HOUR_MS, "day": DAY_MS}
MAX_ASN = 2**32 - 1
# Times are kept well inside 64 bits: the storage rounds a window out to whole hours and
# weeks, which must not overflow a BIGINT. ISO 8601's years 1 to 9999 are all inside.
MAX_TIME_MS = 2**62
# The longest value of each parameter; anything longer is refused before it is looked at.
MAX_LENGTH = {
    "cc": 2,
    "asn": 12,  # "AS" and ten digits
    "domain": 1024,  # a host name, or a URL to take the host from
    "since": 40,
    "until": 40,
    "bucket": 4,
    "verdict": MAX_VERDICT,
    "limit": 4,
    "cursor": 64,
    "agent": MAX_AGENT_ID,
    "kind": 16,
}
WINDOW = frozenset({"cc", "asn", "domain", "since", "until"})
TIMELINE_PARAMS = WINDOW | {"bucket"}
PAGE_PARAMS = WINDOW | {"verdict", "limit", "cursor"}
OUTAGE_PARAMS = frozenset({"cc", "asn", "agent", "since", "until", "kind"})
# /api/v1/outages's kinds: collector.outages' offline and silent, collector.degradation's.
OUTAGE_KINDS = ("offline", "silent", "degraded")

# [0-9], never \d or str.isdigit: both take digits of other scripts that int() reads or not.
_CC = re.compile(r"[A-Za-z]{2}")
_ASN = re.compile(r"(?:[Aa][Ss])?([0-9]{1,10})")
_MS = re.compile(r"[0-9]{1,19}")
_LIMIT = re.compile(r"[0-9]{1,4}")
_CURSOR = re.compile(r"[A-Za-z0-9_=-]+")
# Printable ASCII without spaces, as agent ids (agent.wire.batch) and verdict names are.
_NAME = re.compile(r"[!-~]+")


class BadParam(ApiError):
    """A query parameter that cannot be used; the message names it and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def check_query(query: MultiMapping[str], allowed: frozenset[str]) -> dict[str, str]:
    """The parameters given, each once and within its length, as a plain mapping; empty
    values are left out, as if not given. BadParam for an unknown or repeated one."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in query.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadParam(f"unknown parameter {name[:40]!r}; allowed: {known}")
        if name in seen:
            raise BadParam(f"{name!r} is given more than once")
        seen.add(name)
        if len(value) > MAX_LENGTH[name]:
            raise BadParam(f"{name!r} is too long: at most {MAX_LENGTH[name]} characters")
        if value:
            out[name] = value
    return out


def parse_time(name: str, text: str) -> int:
    """Unix milliseconds, or ISO 8601 (a time without an offset is taken as UTC)."""
    if _MS.fullmatch(text):
        ms = int(text)
    else:
        try:
            # ASCII only: fromisoformat would take other scripts' digits.
            when = datetime.fromisoformat(text) if text.isascii() else None
        except ValueError:
            when = None
        if when is None:
            raise BadParam(f"{name!r} must be Unix milliseconds or ISO 8601")
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ms = int(when.timestamp() * 1000)
    if not -MAX_TIME_MS <= ms <= MAX_TIME_MS:
        raise BadParam(f"{name!r} is out of range: at most {MAX_TIME_MS} ms from 1970")
    return ms


def parse_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The common filters of :func:`check_query`'s answer, as keyword arguments."""
    out: dict[str, Any] = {}
    if (cc := params.get("cc")) is not None:
        if not _CC.fullmatch(cc):
            raise BadParam("'cc' must be a two-letter country code")
        out["cc"] = cc.upper()
    if (asn := params.get("asn")) is not None:
        number = _ASN.fullmatch(asn)
        if number is None or int(number[1]) > MAX_ASN:
            raise BadParam("'asn' must be an AS number (0 for unknown)")
        out["asn"] = int(number[1])
    if (domain := params.get("domain")) is not None:
        out["domain"] = parse_domain(domain)
    for name in ("since", "until"):
        if (text := params.get(name)) is not None:
            out[f"{name}_ms"] = parse_time(name, text)
    if "since_ms" in out and "until_ms" in out and out["since_ms"] > out["until_ms"]:
        raise BadParam("'since' is after 'until'")
    return out


def parse_domain(text: str) -> str:
    try:
        host = Target.parse(text).host
    except ValueError:  # TargetError, and what IDNA raises for a name it cannot encode
        raise BadParam("'domain' must be a host name") from None
    if len(host) > 253:
        raise BadParam("'domain' is too long")
    return host


def parse_name(params: Mapping[str, str], name: str) -> str | None:
    """An agent id or a verdict name: printable ASCII without spaces."""
    value = params.get(name)
    if value is not None and not _NAME.fullmatch(value):
        raise BadParam(f"{name!r} must be printable ASCII without spaces")
    return value


def parse_bucket(params: Mapping[str, str]) -> str:
    bucket = params.get("bucket", "hour")
    if bucket not in BUCKETS:
        raise BadParam("'bucket' must be 'hour' or 'day'")
    return bucket


def parse_page(params: Mapping[str, str]) -> tuple[MeasurementFilter, int, str | None]:
    filters = parse_filters(params)
    verdict = parse_name(params, "verdict")
    limit_text = params.get("limit", str(DEFAULT_PAGE))
    if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_PAGE:
        raise BadParam(f"'limit' must be 1..{MAX_PAGE}")
    cursor = params.get("cursor")
    if cursor is not None:
        try:
            # Decoded here so that a bad one is refused before any query runs.
            if not _CURSOR.fullmatch(cursor):
                raise BadCursor("the cursor is not one this API returned")
            decode_cursor(cursor)
        except BadCursor as exc:
            raise BadParam(f"'cursor': {exc}") from None
    return MeasurementFilter(verdict=verdict, **filters), int(limit_text), cursor
