"""Collector evidence: the ``netsonde-collector bundle`` and ``verify`` commands.

Only argparse at import time, as ``collector.cli`` requires (``--help`` stays fast); the
storage, the key and the verifier are imported when a command runs. ``verify`` is the
standalone verifier (``collector.evidence.netsonde_verify``) itself, so the collector and a
court's expert run the same checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.config import Settings

    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "COMMANDS",
    "check_key",
    "evidence_parsers",
    "key_file_option",
    "run_evidence_command",
]

COMMANDS = ("bundle", "verify")
PROG = "netsonde-collector"


def key_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        metavar="PATH",
        help="the collector's key that signs evidence bundles, created at first start "
        "(default: collector-key.pem beside a SQLite database, else in $STATE_DIRECTORY, "
        "else in ~/.local/state/netsonde-collector)",
    )


def check_key(settings: Settings) -> int | None:
    """``serve``'s first step: creates the collector's key at the first start, or checks
    that it can be read; an exit status if not (a key others can read is refused)."""
    import logging

    from agent.wire.keys import IdentityError
    from collector.evidence.key import key_fingerprint, load_or_create_key

    try:
        key = load_or_create_key(settings.key_file or "")
    except IdentityError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("netsonde.collector").info(
        "collector key %s, fingerprint %s", settings.key_file, key_fingerprint(key)
    )
    return None


def evidence_parsers(commands: _Commands, default_db: str) -> None:
    bundle = commands.add_parser(
        "bundle",
        help="write a signed evidence bundle of every measurement behind a query",
        description="Write a signed archive of every measurement of a domain on some networks "
        "in a period, exactly as its agents signed it, with their public keys, the "
        "collector's receive times, a summary of the counts and a manifest of hashes signed "
        "with the collector's key. Anyone can check it with 'verify' or the standalone "
        "netsonde_verify.py. It names agents by id: give it to whom you would show them.",
    )
    bundle.add_argument("--domain", metavar="NAME", help="the domain (default: every domain)")
    bundle.add_argument(
        "--asn", action="append", default=[], metavar="N",
        help="a network, as 64500 or AS64500 (repeatable; default: every network)",
    )  # fmt: skip
    bundle.add_argument("--since", required=True, metavar="TIME", help="ISO 8601 or Unix ms")
    bundle.add_argument("--until", required=True, metavar="TIME", help="ISO 8601 or Unix ms")
    bundle.add_argument("--out", required=True, metavar="FILE", help="the bundle to write")
    bundle.add_argument("--db", default=default_db, metavar="URL", help="the storage URL")
    key_file_option(bundle)
    verify = commands.add_parser(
        "verify",
        help="check an evidence bundle: every hash, signature and count",
        description="Check an evidence bundle offline: the archive byte for byte, every "
        "file's hash, the manifest's signature, every agent's batch signature, each "
        "measurement against its record, and the summary's counts. Exit 0 if all hold.",
    )
    verify.add_argument("bundle", metavar="BUNDLE")
    verify.add_argument(
        "--collector-key", metavar="BASE64",
        help="the key the bundle must be signed with (GET /api/v1/collector-key)",
    )  # fmt: skip


def run_evidence_command(args: argparse.Namespace) -> int:
    if args.command == "verify":
        from collector.evidence.netsonde_verify import print_report, verify_bundle

        return print_report(verify_bundle(args.bundle, args.collector_key))
    return run_bundle(args)


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def run_bundle(args: argparse.Namespace) -> int:
    from agent.wire.keys import IdentityError
    from collector.config import ConfigError, check_db_url, default_key_file
    from collector.evidence.bundle import build_bundle
    from collector.evidence.key import key_fingerprint, load_or_create_key, public_key_text
    from collector.evidence.query import parse_query
    from collector.storage import open_storage

    try:
        query = parse_query(args.domain, args.asn, args.since, args.until)
        url = check_db_url(args.db)
        key = load_or_create_key(args.key_file or default_key_file(url))
    except (ValueError, ConfigError, IdentityError) as exc:
        return _error(str(exc))
    tmp = f"{args.out}.{os.getpid()}.tmp"
    storage = open_storage(url)
    try:
        with open(tmp, "xb") as out:
            result = build_bundle(storage, query, key, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, args.out)
    except OSError as exc:
        return _error(f"cannot write {args.out}: {exc}")
    finally:
        storage.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    counts = result.summary
    print(f"bundle {result.bundle_id}")
    print(f"  {query.describe()}")
    print(
        f"  {counts['measurements']} measurement(s) from {counts['agents']} agent(s) in "
        f"{counts['batches']} signed batch(es)"
        + (
            f"; {counts['not_individually_verifiable']} stored before signed batches were kept"
            if counts["not_individually_verifiable"]
            else ""
        )
    )
    print(f"  signed by collector key {public_key_text(key)} ({key_fingerprint(key)})")
    print(f"  written to {args.out}")
    return 0
