"""Collector evidence: the query that names a set of measurements (a domain, networks, a
period), shared by bundles, reports and exports on the command line and in the API.

Pure and light (the standard library and ``agent.model``): parsing a query must not load
the storage. Every problem is a :class:`ValueError` whose message names the option.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.model.measurement import Target

__all__ = ["MAX_ASNS", "EvidenceQuery", "parse_asn", "parse_query", "parse_time"]

MAX_ASN = 2**32 - 1
MAX_ASNS = 64  # networks one query may name; more is a typo or abuse, not a report
# The storage rounds windows out to hours and weeks: times stay well inside 64 bits.
MAX_TIME_MS = 2**62
_MS = re.compile(r"[0-9]{1,19}")
# [0-9], never \d: \d takes other scripts' digits, which int() reads.
_ASN = re.compile(r"(?:[Aa][Ss])?([0-9]{1,10})")


@dataclass(frozen=True)
class EvidenceQuery:
    """Measurements of ``domain`` (None: every domain) on ``asns`` (empty: every network)
    measured at ``since_ms`` <= measured < ``until_ms`` (Unix milliseconds)."""

    domain: str | None
    asns: tuple[int, ...]
    since_ms: int
    until_ms: int

    def describe(self) -> str:
        """One line for people: what the query covers."""
        networks = ", ".join(f"AS{asn}" for asn in self.asns) or "every network"
        return (
            f"{self.domain or 'every domain'} on {networks}, "
            f"{_iso(self.since_ms)} to {_iso(self.until_ms)}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "asns": list(self.asns),
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
        }


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        # parse_time allows times past year 9999, which datetime cannot hold.
        return f"{ms} ms"


def parse_time(name: str, value: str | int) -> int:
    """Unix milliseconds (an int, or its ASCII digits) or ISO 8601 (without an offset,
    UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a time, got {value!r}")
    if isinstance(value, int):
        ms = value
    elif _MS.fullmatch(value):
        ms = int(value)
    else:
        try:
            # ASCII only: fromisoformat reads other scripts' digits too.
            when = datetime.fromisoformat(value) if value.isascii() and len(value) <= 40 else None
        except ValueError:
            when = None
        if when is None:
            raise ValueError(f"{name} {value[:40]!r}: expected ISO 8601 or Unix milliseconds")
        ms = int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)
    if not 0 <= ms <= MAX_TIME_MS:
        raise ValueError(f"{name}: out of range (1970 to {MAX_TIME_MS} ms)")
    return ms


def parse_asn(value: str | int) -> int:
    """An AS number, as ``64500`` or ``AS64500``."""
    if isinstance(value, bool):
        raise ValueError(f"asn {value!r}: expected an AS number")
    if isinstance(value, int):
        number = value
    else:
        match = _ASN.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"asn {value[:20]!r}: expected an AS number such as 64500 or AS64500")
        number = int(match[1])
    if not 0 <= number <= MAX_ASN:
        raise ValueError(f"asn {number}: out of range (0 to {MAX_ASN})")
    return number


def _parse_domain(value: str) -> str:
    try:
        host = Target.parse(value.strip()).host if len(value) <= 1024 else ""
    except ValueError:  # TargetError, and what IDNA raises for a name it cannot encode
        host = ""
    if not host or len(host) > 253:
        raise ValueError(f"domain {value[:60]!r}: expected a host name such as example.com")
    return host


def parse_query(
    domain: str | None,
    asns: Iterable[str | int],
    since: str | int,
    until: str | int,
) -> EvidenceQuery:
    """The query for ``domain`` (a host name or URL; None or empty: every domain), ``asns``
    (empty: every network) from ``since`` to ``until``; ValueError naming what is wrong."""
    networks = tuple(sorted({parse_asn(asn) for asn in asns}))
    if len(networks) > MAX_ASNS:
        raise ValueError(f"asn: {len(networks)} networks, at most {MAX_ASNS}")
    since_ms, until_ms = parse_time("since", since), parse_time("until", until)
    if since_ms >= until_ms:
        raise ValueError("since: must be before until")
    return EvidenceQuery(_parse_domain(domain) if domain else None, networks, since_ms, until_ms)
