"""Collector, fingerprints: the blockpage fingerprints ``GET /api/v1/fingerprints`` serves.

The operator's OONI CSVs (``serve --fingerprints``) are read with the agent's own loader
(``agent.fingerprints``) and served as one CSV of the valid rows (``agent.fingerprints.dump``),
which the agent parses with that loader again: one parser on both sides, and the answer is
also a file ``--fingerprints`` accepts. Loaded once, at start; a changed file needs a
restart. The body is built here once, with its gzip form and their digest, so a request
costs the event loop nothing but a header comparison.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.api.paths import MAX_FINGERPRINTS_BYTES
from agent.fingerprints import FingerprintFileError, dump, load

__all__ = ["FingerprintsError", "ServedFingerprints", "load_served", "report"]

MAX_LOGGED_PROBLEMS = 10  # bad rows named in the log at start; the rest only counted

log = logging.getLogger("netsonde.collector.fingerprints")


class FingerprintsError(ValueError):
    """Fingerprints that cannot be served; the message names the file or the limit."""


@dataclass(frozen=True)
class ServedFingerprints:
    """What the endpoint answers: the CSV, gzipped too, and its tag."""

    csv: bytes
    gzipped: bytes
    digest: str  # of the CSV: both encodings change exactly when it does
    count: int
    problems: tuple[str, ...]  # bad rows skipped, "FILE:LINE: why"


def load_served(paths: Sequence[str]) -> ServedFingerprints:
    """Load the CSVs into what is served; none gives an empty set (a header only). Raises
    FingerprintsError for an unreadable file or a set over ``MAX_FINGERPRINTS_BYTES``."""
    try:
        loaded = load(Path(p) for p in paths)
    except FingerprintFileError as exc:
        raise FingerprintsError(str(exc)) from None
    body = dump(loaded).encode()
    if len(body) > MAX_FINGERPRINTS_BYTES:
        raise FingerprintsError(
            f"{len(loaded)} fingerprints make {len(body)} bytes, over the "
            f"{MAX_FINGERPRINTS_BYTES} an agent accepts"
        )
    return ServedFingerprints(
        csv=body,
        gzipped=gzip.compress(body, mtime=0),
        digest=hashlib.sha256(body).hexdigest()[:32],
        count=len(loaded),
        problems=loaded.problems,
    )


def report(served: ServedFingerprints) -> None:
    """One log line at start: how many are served, and the bad rows skipped."""
    if not served.problems:
        log.info("fingerprints: serving %d", served.count)
        return
    shown = "; ".join(served.problems[:MAX_LOGGED_PROBLEMS])
    more = len(served.problems) - MAX_LOGGED_PROBLEMS
    log.warning(
        "fingerprints: serving %d, %d bad rows skipped: %s%s",
        served.count,
        len(served.problems),
        shown,
        f" (and {more} more)" if more > 0 else "",
    )
