"""Collector entry point, agent administration: ``enroll``, ``agents list``, ``agents revoke``.

Imported by ``collector.cli`` only when one of these commands runs, so ``--help`` stays
free of SQLAlchemy and cryptography.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from agent.wire.keys import IdentityError, fingerprint, public_key_from_bytes
from collector.config import ConfigError, check_db_url
from collector.storage import AgentRow, Storage, open_storage

PROG = "netsonde-collector"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fingerprint(row: AgentRow) -> str:
    try:
        return fingerprint(public_key_from_bytes(row.public_key))
    except IdentityError:
        return "(invalid key)"


def agents_table(rows: list[AgentRow]) -> str:
    header = ("ID", "NAME", "KEY", "CREATED", "REVOKED")
    lines = [
        (r.id, r.name, _fingerprint(r), _when(r.created_ms), _when(r.revoked_ms)) for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    )


def _run(storage: Storage, args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    if args.command == "enroll":
        ttl_ms = int(args.ttl * 3_600_000)
        token = storage.create_enroll_token(args.name, ttl_ms, now)
        print(token)
        print(f"expires {_when(now + ttl_ms)}")
        return 0
    if args.agents_command == "list":
        print(agents_table(storage.list_agents()))
        return 0
    if not storage.revoke_agent(args.agent_id, now):
        print(f"{PROG}: error: no agent {args.agent_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.agent_id}")
    return 0


def run_agents_command(args: argparse.Namespace) -> int:
    try:
        url = check_db_url(args.db)
        if args.command == "enroll" and not (0 < args.ttl < 24 * 365 * 10):
            raise ConfigError(f"--ttl {args.ttl!r}: must be more than 0 hours, under 10 years")
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    storage = open_storage(url)
    try:
        return _run(storage, args)
    finally:
        storage.close()
