"""Agent fingerprints: blockpage fingerprint matching.

Pure code, no network I/O: ``agent.verdict`` calls it on the agent (to name the blockpage it saw)
and on the collector (to re-match stored evidence), so both sides must agree on the same semantics.

Fingerprints use the OONI blocking-fingerprints CSV schema::

    name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,
    expected_countries,source,exp_url,notes

``full`` is equality, ``prefix`` startswith, ``contains`` substring and ``regexp`` ``re.search``.
A real fingerprint always beats a known false positive (scope ``fp``); among equals the higher
confidence wins, then the earlier row, so results are deterministic.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.model.observations import Inspector

__all__ = [
    "Fingerprint",
    "FingerprintFileError",
    "FingerprintSet",
    "Match",
    "dump",
    "inspector",
    "load",
    "parse",
]

PATTERN_TYPES: Final = frozenset({"full", "prefix", "contains", "regexp"})
_COLUMNS: Final = ("name", "scope", "location_found", "pattern_type", "pattern")
# What dump() writes: the columns a fingerprint is made of, without OONI's notes and sources.
_SERVED_COLUMNS: Final = (*_COLUMNS, "confidence_no_fp", "expected_countries")


class FingerprintFileError(OSError):
    """A fingerprint file cannot be opened or read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    name: str
    scope: str
    location: str  # "body", "dns" or "header.<lowercased name>"
    pattern_type: str
    pattern: str
    confidence: int
    countries: tuple[str, ...] = ()

    @property
    def is_false_positive(self) -> bool:
        return self.scope == "fp"


@dataclass(frozen=True, slots=True)
class Match:
    fingerprint: Fingerprint
    false_positive: bool


class _Matcher:
    """All fingerprints of one location, as checks ordered best-first."""

    def __init__(self, ranked: Sequence[Fingerprint]) -> None:
        # Checked in rank order so the first hit is the best one and the scan can stop there.
        # One big alternation regex of the literals was measured ~25x slower than this in
        # CPython's re (it tries every branch at every position), while `in` runs in C.
        seen: set[tuple[str, str]] = set()
        self._checks: list[tuple[Callable[[str], bool], Fingerprint]] = []
        for fp in ranked:
            if (fp.pattern_type, fp.pattern) not in seen:
                seen.add((fp.pattern_type, fp.pattern))
                self._checks.append((_check(fp.pattern_type, fp.pattern), fp))

    def first(self, values: Sequence[str]) -> Fingerprint | None:
        for check, fp in self._checks:
            if any(map(check, values)):
                return fp
        return None


def _check(pattern_type: str, pattern: str) -> Callable[[str], bool]:
    if pattern_type == "full":
        return lambda value: value == pattern
    if pattern_type == "prefix":
        return lambda value: value.startswith(pattern)
    if pattern_type == "contains":
        return lambda value: pattern in value
    search = re.compile(pattern).search
    return lambda value: search(value) is not None


class FingerprintSet:
    """Fingerprints grouped by location, plus the problems met while loading them."""

    def __init__(self, fingerprints: Iterable[Fingerprint], problems: Iterable[str] = ()) -> None:
        self.fingerprints: tuple[Fingerprint, ...] = tuple(fingerprints)
        self.problems: tuple[str, ...] = tuple(problems)
        self._rank = {id(fp): i for i, fp in enumerate(sorted(self.fingerprints, key=_rank_key))}
        by_location: dict[str, list[Fingerprint]] = {}
        for fp in sorted(self.fingerprints, key=self._rank_of):
            by_location.setdefault(fp.location, []).append(fp)
        self._matchers = {loc: _Matcher(fps) for loc, fps in by_location.items()}

    def __len__(self) -> int:
        return len(self.fingerprints)

    def _rank_of(self, fp: Fingerprint) -> int:
        return self._rank[id(fp)]

    def _best(self, location: str, values: Iterable[str]) -> Match | None:
        matcher = self._matchers.get(location)
        best = None if matcher is None else matcher.first(tuple(values))
        return None if best is None else Match(best, best.is_false_positive)

    def match_body(self, body: bytes | str) -> Match | None:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        return self._best("body", (text,))

    def match_headers(self, headers: Mapping[str, str]) -> Match | None:
        # items() rather than a dict so a multidict's repeated headers are all looked at.
        results = [
            m
            for name, value in headers.items()
            if (m := self._best("header." + name.lower(), (value,))) is not None
        ]
        return min(results, key=lambda m: self._rank_of(m.fingerprint), default=None)

    def match_dns(self, answers: Iterable[str]) -> Match | None:
        # dnspython renders names absolute ("host.example."); the CSV writes them without the dot.
        return self._best("dns", (a.strip().rstrip(".") for a in answers))


def _rank_key(fp: Fingerprint) -> tuple[bool, int]:
    # sorted() is stable, so file order breaks the remaining ties.
    return (fp.is_false_positive, -fp.confidence)


def _parse_row(row: Mapping[str, str | None]) -> Fingerprint:
    """Build one fingerprint; ValueError says why the row is unusable."""
    missing = [c for c in _COLUMNS if not (row.get(c) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    location = (row["location_found"] or "").strip().lower()
    if location not in ("body", "dns") and not (
        location.startswith("header.") and len(location) > len("header.")
    ):
        raise ValueError(f"unknown location_found {location!r}")
    pattern_type = (row["pattern_type"] or "").strip().lower()
    if pattern_type not in PATTERN_TYPES:
        raise ValueError(f"unknown pattern_type {pattern_type!r}")
    pattern = row["pattern"] or ""  # not stripped: whitespace can be part of a blockpage
    if pattern_type == "regexp":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"regexp does not compile: {exc}") from exc
    confidence_text = (row.get("confidence_no_fp") or "").strip()
    try:
        confidence = int(confidence_text) if confidence_text else 0
    except ValueError:
        raise ValueError(f"confidence_no_fp is not an integer: {confidence_text!r}") from None
    countries = tuple(
        c.strip().upper() for c in (row.get("expected_countries") or "").split(",") if c.strip()
    )
    return Fingerprint(
        name=(row["name"] or "").strip(),
        scope=(row["scope"] or "").strip().lower(),
        location=location,
        pattern_type=pattern_type,
        pattern=pattern,
        confidence=confidence,
        countries=countries,
    )


def _read_rows(
    lines: Iterable[str], source: str, out: list[Fingerprint], problems: list[str]
) -> bool:
    """Parse one CSV; False if its header lacks the columns. Raises csv.Error (and the
    file's OSError) for the caller to name."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or not set(_COLUMNS) <= set(reader.fieldnames):
        problems.append(f"{source}:1: header lacks columns {', '.join(_COLUMNS)}")
        return False
    start = reader.line_num + 1
    for row in reader:
        # Quoted fields can span lines; report where the record starts.
        line, start = start, reader.line_num + 1
        if None in row or None in row.values():
            problems.append(f"{source}:{line}: wrong number of columns")
            continue
        try:
            out.append(_parse_row(row))
        except ValueError as exc:
            problems.append(f"{source}:{line}: {exc}")
    return True


def _load_file(path: Path, out: list[Fingerprint], problems: list[str]) -> None:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            _read_rows(fh, str(path), out, problems)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FingerprintFileError(f"cannot read fingerprint file {path}: {exc}") from exc


def load(paths: Iterable[Path]) -> FingerprintSet:
    """Load fingerprint CSVs; bad rows are skipped into ``problems``, unreadable files raise."""
    fingerprints: list[Fingerprint] = []
    problems: list[str] = []
    for path in paths:
        _load_file(Path(path), fingerprints, problems)
    return FingerprintSet(fingerprints, problems)


def parse(text: str, source: str) -> FingerprintSet:
    """Fingerprints from CSV text (the collector's ``/api/v1/fingerprints``, or its cached
    copy) by the same rules as :func:`load`; ``source`` names it in ``problems``. Text that
    is no fingerprint CSV at all (no OONI header, a NUL byte) raises ValueError."""
    fingerprints: list[Fingerprint] = []
    problems: list[str] = []
    try:
        if not _read_rows(io.StringIO(text, newline=""), source, fingerprints, problems):
            raise ValueError(problems[-1])
    except csv.Error as exc:
        raise ValueError(f"{source}: not CSV: {exc}") from exc
    return FingerprintSet(fingerprints, problems)


def dump(fingerprints: FingerprintSet) -> str:
    """The set as a CSV with the OONI columns :func:`parse` reads, rank ties in their order:
    ``parse(dump(s), ...)`` gives ``s`` back."""
    out = io.StringIO(newline="")
    # The default "\r\n" line end, as RFC 4180 has it: a field holding either is quoted.
    writer = csv.writer(out)
    writer.writerow(_SERVED_COLUMNS)
    for fp in fingerprints.fingerprints:
        row = (fp.name, fp.scope, fp.location, fp.pattern_type, fp.pattern, fp.confidence)
        writer.writerow((*row, ",".join(fp.countries)))
    return out.getvalue()


def inspector(fingerprints: FingerprintSet | None) -> Inspector | None:
    """Match a response against blockpage fingerprints; known false positives don't count."""
    if fingerprints is None:
        return None

    def inspect(body: bytes, headers: Sequence[tuple[str, str]]) -> str | None:
        for match in (fingerprints.match_body(body), fingerprints.match_headers(dict(headers))):
            if match is not None and not match.false_positive:
                return match.fingerprint.name
        return None

    return inspect
