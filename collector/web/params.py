"""Collector web layer: the query API's parameters, parsed and checked.

Every query route takes the same filters (``cc``, ``asn``, ``domain``, ``since``, ``until``);
unknown parameters are refused, and a bad value raises :class:`BadParam`, a 400 naming the
parameter. Times come in as Unix milliseconds or ISO 8601.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.model.measurement import Target, TargetError
from collector.errors import ApiError
from collector.storage.queries import MAX_PAGE, MeasurementFilter
from collector.storage.schema import DAY_MS, HOUR_MS, MAX_DOMAIN, MAX_VERDICT

DEFAULT_PAGE = 100
BUCKETS = {"hour": HOUR_MS, "day": DAY_MS}
MAX_ASN = 2**32 - 1
_CC = re.compile(r"[A-Za-z]{2}")
WINDOW = frozenset({"cc", "asn", "domain", "since", "until"})
OUTAGE_PARAMS = frozenset({"cc", "asn", "agent", "since", "until"})


class BadParam(ApiError):
    """A query parameter that cannot be used; the message names it and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def one(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return None if value is None or value == "" else value


def parse_time(name: str, text: str) -> int:
    """Unix milliseconds, or ISO 8601 (a time without an offset is taken as UTC)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadParam(f"{name!r} must be Unix milliseconds or ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def parse_filters(query: Mapping[str, str], allowed: frozenset[str]) -> dict[str, Any]:
    """The common filters as keyword arguments; unknown parameters are refused, since a
    mistyped filter silently widening the answer is worse than an error."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadParam(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    out: dict[str, Any] = {}
    if (cc := one(query, "cc")) is not None:
        if not _CC.fullmatch(cc):
            raise BadParam("'cc' must be a two-letter country code")
        out["cc"] = cc.upper()
    if (asn := one(query, "asn")) is not None:
        number = asn.upper().removeprefix("AS")
        if not number.isdigit() or int(number) > MAX_ASN:
            raise BadParam("'asn' must be an AS number (0 for unknown)")
        out["asn"] = int(number)
    if (domain := one(query, "domain")) is not None:
        try:
            out["domain"] = Target.parse(domain).host
        except TargetError:
            raise BadParam("'domain' must be a host name") from None
        if len(out["domain"]) > MAX_DOMAIN:
            raise BadParam("'domain' is too long")
    for name in ("since", "until"):
        if (text := one(query, name)) is not None:
            out[f"{name}_ms"] = parse_time(name, text)
    if "since_ms" in out and "until_ms" in out and out["since_ms"] > out["until_ms"]:
        raise BadParam("'since' is after 'until'")
    return out


def parse_page(query: Mapping[str, str]) -> tuple[MeasurementFilter, int, str | None]:
    filters = parse_filters(query, WINDOW | {"verdict", "limit", "cursor"})
    verdict = one(query, "verdict")
    if verdict is not None and len(verdict) > MAX_VERDICT:
        raise BadParam("'verdict' is too long")
    limit_text = one(query, "limit") or str(DEFAULT_PAGE)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise BadParam(f"'limit' must be 1..{MAX_PAGE}")
    return MeasurementFilter(verdict=verdict, **filters), int(limit_text), one(query, "cursor")
