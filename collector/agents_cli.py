"""Collector entry point, administration: ``enroll``, ``agents list|revoke`` and
``operator-token create|list|revoke``.

``collector.cli`` imports this module for :func:`operator_token_parser` when it builds its
parser, so only argparse and the standard library are imported at the top; the storage and
cryptography are imported when a command runs, and ``--help`` stays free of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from collector.config import DEFAULT_DB, ConfigError, check_db_url

if TYPE_CHECKING:
    from collector.storage import AgentRow, Storage
    from collector.storage.operators import OperatorToken

    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "netsonde-collector"
OPERATOR_TOKEN = "operator-token"


def operator_token_parser(commands: _Commands) -> None:
    tokens = commands.add_parser(
        OPERATOR_TOKEN,
        help="create, list or revoke the operator's tokens for the agent-level read API",
        description="An operator token opens /api/v1/agents, /metrics and the agent ids in "
        "/api/v1/measurements and /api/v1/outages: send it as 'Authorization: Bearer TOKEN'. "
        "It is printed once, at creation; the database keeps only its hash.",
    )
    actions = tokens.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="print a new token (once)")
    create.add_argument("--name", required=True, help="what the token is for, e.g. grafana")
    listing = actions.add_parser("list", help="list the tokens (never the tokens themselves)")
    revoke = actions.add_parser("revoke", help="refuse a token from now on (within 30 s)")
    revoke.add_argument("token_id", metavar="ID")
    for action in (create, listing, revoke):
        action.add_argument("--db", default=DEFAULT_DB, metavar="URL", help="the storage URL")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fingerprint(row: AgentRow) -> str:
    from agent.wire.keys import IdentityError, fingerprint, public_key_from_bytes

    try:
        return fingerprint(public_key_from_bytes(row.public_key))
    except IdentityError:
        return "(invalid key)"


def table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    )


def agents_table(rows: list[AgentRow]) -> str:
    return table(
        ("ID", "NAME", "KEY", "CREATED", "REVOKED"),
        [(r.id, r.name, _fingerprint(r), _when(r.created_ms), _when(r.revoked_ms)) for r in rows],
    )


def tokens_table(rows: list[OperatorToken]) -> str:
    return table(
        ("ID", "NAME", "CREATED", "REVOKED"),
        [(t.id, t.name, _when(t.created_ms), _when(t.revoked_ms)) for t in rows],
    )


def _enroll(storage: Storage, args: argparse.Namespace, now: int) -> list[str]:
    ttl_ms = int(args.ttl * 3_600_000)
    return [storage.create_enroll_token(args.name, ttl_ms, now), f"expires {_when(now + ttl_ms)}"]


def _create_token(storage: Storage, args: argparse.Namespace, now: int) -> list[str]:
    token_id, token = storage.create_operator_token(args.name, now)
    return [token, f"id {token_id}: shown once, keep it secret; the collector stores only its hash"]


def _revoke_agent(storage: Storage, args: argparse.Namespace, now: int) -> list[str] | None:
    return [f"revoked {args.agent_id}"] if storage.revoke_agent(args.agent_id, now) else None


def _revoke_token(storage: Storage, args: argparse.Namespace, now: int) -> list[str] | None:
    found = storage.revoke_operator_token(args.token_id, now)
    return [f"revoked {args.token_id}"] if found else None


# (command, action) -> what it prints, None for nothing of that id to revoke.
_ACTIONS: dict[tuple[str, str | None], Callable[..., list[str] | None]] = {
    ("enroll", None): _enroll,
    ("agents", "list"): lambda storage, args, now: [agents_table(storage.list_agents())],
    ("agents", "revoke"): _revoke_agent,
    (OPERATOR_TOKEN, "create"): _create_token,
    (OPERATOR_TOKEN, "list"): lambda storage, args, now: [
        tokens_table(storage.list_operator_tokens())
    ],
    (OPERATOR_TOKEN, "revoke"): _revoke_token,
}


def _run(storage: Storage, args: argparse.Namespace) -> int:
    action = getattr(args, "agents_command", None) or getattr(args, "token_command", None)
    lines = _ACTIONS[args.command, action](storage, args, int(time.time() * 1000))
    if lines is None:
        what, name = (
            ("operator token", args.token_id)
            if args.command == OPERATOR_TOKEN
            else ("agent", args.agent_id)
        )
        print(f"{PROG}: error: no {what} {name!r}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def run_agents_command(args: argparse.Namespace) -> int:
    try:
        url = check_db_url(args.db)
        if args.command == "enroll" and not (0 < args.ttl < 24 * 365 * 10):
            raise ConfigError(f"--ttl {args.ttl!r}: must be more than 0 hours, under 10 years")
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    from collector.storage import open_storage

    storage = open_storage(url)
    try:
        return _run(storage, args)
    finally:
        storage.close()
