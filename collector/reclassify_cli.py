"""Collector CLI: ``netsonde-collector reclassify``, every stored verdict decided again.

When the rules (``agent.verdict``) or the fingerprints improve, stored measurements are
decoded from their wire records and decided again; what changed is updated and the
rollups are rebuilt (``collector.storage.reclassify``). Version 1 records, from before
redirect chains and IPv6, are decided the same way.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from collector.config import DEFAULT_DB, ConfigError, check_db_url

if TYPE_CHECKING:
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["reclassify_parser", "run_reclassify"]

PROG = "netsonde-collector"


def reclassify_parser(commands: _Commands) -> None:
    reclassify = commands.add_parser(
        "reclassify",
        help="recompute stored verdicts and rollups with the current rules",
        description="Decode every stored measurement, decide its verdict again with the "
        "current rules (agent.verdict) and fingerprints, update what changed, rebuild the rollups.",
    )
    reclassify.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")
    reclassify.add_argument(
        "--fingerprints",
        action="append",
        default=[],
        metavar="PATH",
        help="blockpage fingerprint CSV (OONI schema), as the agents use (repeatable)",
    )


def run_reclassify(db: str, fingerprint_paths: list[str]) -> int:
    """The ``reclassify`` command; imports the storage and the rules only when it runs."""
    from pathlib import Path

    from agent.fingerprints import FingerprintFileError
    from agent.fingerprints import load as load_fingerprints
    from agent.model.measurement import SiteMeasurement
    from agent.verdict import redecide
    from collector.storage import open_storage

    try:
        url = check_db_url(db)
        fingerprints = load_fingerprints(Path(p) for p in fingerprint_paths)
    except (ConfigError, FingerprintFileError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2

    def verdict_of(m: SiteMeasurement) -> str:
        return redecide(m, fingerprints).verdict

    storage = open_storage(url)
    try:
        result = storage.reclassify(verdict_of)
    finally:
        storage.close()
    print(
        f"reclassified {result.total} measurements: {result.changed} changed verdict"
        + (f", {result.undecodable} undecodable (kept)" if result.undecodable else "")
    )
    return 0
