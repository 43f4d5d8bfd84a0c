"""Collector storage: the relational schema, as SQLAlchemy Core tables.

The same tables serve SQLite and PostgreSQL, so only portable types are used. Times are
integer Unix milliseconds, as on the wire, which sort and compare the same everywhere.
The migrations in ``collector/storage/migrations`` create exactly these tables; a test
compares the two, so a change here needs a new revision there.

``measurements`` is append-only: ingest only inserts, and only ``verdict`` is ever
rewritten (by reclassification). ``rollups``, ``weekly_rollups`` and ``rollup_totals`` are
derived from it and can be rebuilt.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from functools import reduce
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from agent.wire.batch import MAX_VERSION

# Rollup dimensions cannot be NULL (they form the primary key), so an unknown ASN or
# country is stored as these in rollups, and as NULL in measurements.
UNKNOWN_ASN = 0
UNKNOWN_CC = ""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# Weeks start on Monday 00:00 UTC (ISO weeks). The Unix epoch was a Thursday, so a week
# starts at ms - (ms + WEEK_OFFSET_MS) % WEEK_MS.
WEEK_OFFSET_MS = 3 * DAY_MS
MAX_DOMAIN = 253  # the longest DNS name
MAX_VERDICT = 64
MAX_AGENT_ID = 64

# Stable constraint names, so later migrations can refer to them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(MAX_AGENT_ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    # The highest batch sequence number accepted, against replayed uploads.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    # Migration 0010: that batch's signature, NULL until a batch is accepted. Ed25519
    # signatures are deterministic and bind the body, so an equal one is the same batch sent
    # again (a retry whose answer was lost), which is not a replay.
    Column("last_signature", LargeBinary(64), nullable=True),
    # Migration 0012: the agent as its last accepted batch described it (collector.storage.
    # records.AgentStatus), set in that batch's write; NULL where it did not say.
    Column("last_batch_ms", BigInteger, nullable=True),  # that batch's receive time
    Column("version", String(MAX_VERSION), nullable=True),
    Column("spool_records", BigInteger, nullable=True),
    Column("spool_checks", BigInteger, nullable=True),
    Column("evictions", BigInteger, nullable=True),
)

measurements = Table(
    "measurements",
    metadata,
    # The UUIDv7's 16 bytes: time-ordered, so inserts append to the primary key's b-tree.
    Column("id", LargeBinary(16), primary_key=True),
    Column("measured_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("agent_id", String(MAX_AGENT_ID), ForeignKey("agents.id"), nullable=False),
    Column("asn", BigInteger, nullable=True),
    Column("cc", String(2), nullable=True),
    Column("domain", String(MAX_DOMAIN), nullable=False),
    Column("url", Text, nullable=False),
    Column("verdict", String(MAX_VERDICT), nullable=False),
    # The msgpack wire record as received: the source of truth for reclassification.
    Column("record", LargeBinary, nullable=False),
    # SQLite ignores declared lengths, so the limits that matter are checks on both backends.
    CheckConstraint("length(id) = 16", name="id_16_bytes"),
    CheckConstraint("measured_ms >= 0", name="measured_after_epoch"),
    CheckConstraint(f"length(domain) <= {MAX_DOMAIN}", name="domain_length"),
    CheckConstraint(f"length(verdict) <= {MAX_VERDICT}", name="verdict_length"),
    CheckConstraint("length(cc) = 2", name="cc_length"),
    Index(None, "measured_ms"),
    Index(None, "domain"),
    Index(None, "verdict"),
    # Migration 0003: an agent's last upload, one seek (the query API's agent list).
    Index(None, "agent_id", "received_ms"),
    # Migration 0011: the signed batch the record came in, (agent_id, batch_seq) in
    # ``batches``, and its place in the batch's measurements; NULL for records stored
    # before (not verifiable on their own) or without a batch (tools, tests).
    Column("batch_seq", BigInteger, nullable=True),
    Column("batch_index", Integer, nullable=True),
)

# Migration 0011: each accepted batch with measurements, its signed body and signature as
# the agent sent them, once; a stored record is checked on its own against its agent's key
# through it (collector.evidence, docs/design/007-evidence.md).
batches = Table(
    "batches",
    metadata,
    Column("agent_id", String(MAX_AGENT_ID), ForeignKey("agents.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    PrimaryKeyConstraint("agent_id", "seq"),
    CheckConstraint("length(signature) = 64", name="signature_64_bytes"),
)

# One-time enrolment tokens; only the token's SHA-256 is kept, so the table hands out nothing.
enroll_tokens = Table(
    "enroll_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger, nullable=True),
    Column("agent_id", String(MAX_AGENT_ID), ForeignKey("agents.id"), nullable=True),
)

# Migration 0010: the operators' bearer tokens for the read API's agent-level routes. A token
# is ``<id>.<secret>``: the id finds the row, and only the secret's SHA-256 is kept, compared
# in constant time, so neither the table nor a timing difference hands out a token.
MAX_OPERATOR_ID = 32
operator_tokens = Table(
    "operator_tokens",
    metadata,
    Column("id", String(MAX_OPERATOR_ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)

# Migration 0007: the blocking matrix's cells, (domain, asn, cc), as integer ids, which the
# rollup tables key their counts by. Grouping and sorting tens of thousands of rollup rows
# by one integer instead of a text, an integer and a text took the 7-day matrix from ~100
# to ~40 ms of SQLite's time. An id never changes once given. docs/design/003-storage.md.
cells = Table(
    "cells",
    metadata,
    # INTEGER on SQLite, where only that spelling makes the key the rowid.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("domain", String(MAX_DOMAIN), nullable=False),
    Column("asn", BigInteger, nullable=False),  # UNKNOWN_ASN when unknown
    Column("cc", String(2), nullable=False),  # UNKNOWN_CC when unknown
    UniqueConstraint("domain", "asn", "cc"),
)

# Migration 0008: verdict names as integer ids, which the rollup tables key their counts by
# (as cells): SQLite groups and sorts a window's rollup rows by (cell, verdict), and two
# integers cost it ~30% less than an integer and a text. An id never changes once given.
# docs/design/003-storage.md.
verdicts = Table(
    "verdicts",
    metadata,
    # INTEGER on SQLite, where only that spelling makes the key the rowid.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("name", String(MAX_VERDICT), nullable=False),
    UniqueConstraint("name"),
)

rollups = Table(
    "rollups",
    metadata,
    Column("hour_ms", BigInteger, nullable=False),  # start of the hour, Unix ms
    Column("cell", BigInteger, nullable=False),  # cells.id
    Column("verdict", BigInteger, nullable=False),  # verdicts.id
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("hour_ms", "cell", "verdict"),
    # A few cells (one domain's, one network's) across hours, answered from this index alone.
    Index(None, "cell", "verdict", "hour_ms", "count"),
)

# Migration 0005: the agents' connectivity checks (heartbeats), one row per agent and check
# time, so a batch uploaded twice adds nothing. ``asn`` and ``cc`` are the network of the
# upload that carried the check (NULL when unknown), as for measurements. Outages are derived
# from it at query time (``collector.outages``); reclassification never touches it.
connectivity = Table(
    "connectivity",
    metadata,
    Column("agent_id", String(MAX_AGENT_ID), ForeignKey("agents.id"), nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("online", Boolean(create_constraint=False), nullable=False),
    Column("asn", BigInteger, nullable=True),
    Column("cc", String(2), nullable=True),
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("agent_id", "ms"),
    CheckConstraint("ms >= 0", name="checked_after_epoch"),
    CheckConstraint("length(cc) = 2", name="cc_length"),
    # /api/v1/outages reads a time window across agents; the primary key serves one agent.
    Index(None, "ms"),
)

# Migration 0013: the benign goodput samples some connectivity checks carry (bits per
# second), one row per agent and check time like ``connectivity``, with the network of the
# upload that carried it. Degraded periods are derived from it at query time
# (``collector.degradation``).
goodput = Table(
    "goodput",
    metadata,
    Column("agent_id", String(MAX_AGENT_ID), ForeignKey("agents.id"), nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("bps", BigInteger, nullable=False),
    Column("asn", BigInteger, nullable=True),
    Column("cc", String(2), nullable=True),
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("agent_id", "ms"),
    CheckConstraint("ms >= 0", name="sampled_after_epoch"),
    CheckConstraint("bps >= 0", name="bps_positive"),
    CheckConstraint("length(cc) = 2", name="cc_length"),
    Index(None, "ms"),
)

# Migration 0009: the counts per ISO week (Monday 00:00 UTC), one column per day. A window's
# whole days are then read from one row per cell, verdict and week, whichever days of the
# week it takes: a 7-day window reads at most two rows per cell and verdict, where rows
# per day read seven. Kept in the same ingest transaction as ``rollups``; a row has some
# day above zero. On SQLite WITHOUT ROWID: the primary key is then the table, and a week is
# one contiguous covering scan in (cell, verdict) order. docs/design/003-storage.md.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
weekly_rollups = Table(
    "weekly_rollups",
    metadata,
    Column("week_ms", BigInteger, nullable=False),  # the Monday 00:00 UTC starting the week
    Column("cell", BigInteger, nullable=False),
    Column("verdict", BigInteger, nullable=False),  # verdicts.id
    *(Column(day, BigInteger, nullable=False) for day in WEEKDAYS),
    PrimaryKeyConstraint("week_ms", "cell", "verdict"),
    sqlite_with_rowid=False,
)


def week_start(ms: int) -> int:
    """The start of the ISO week (Monday 00:00 UTC) holding ``ms``."""
    return ms - (ms + WEEK_OFFSET_MS) % WEEK_MS


def days_count(days: Iterable[int]) -> ColumnElement[Any]:
    """The count of a ``weekly_rollups`` row over some of its days (indexes into WEEKDAYS)."""
    return reduce(operator.add, (weekly_rollups.c[WEEKDAYS[day]] for day in days))


def weekday(ms: int) -> int:
    """The day of the ISO week holding ``ms``: 0 for Monday, an index into WEEKDAYS."""
    return (ms + WEEK_OFFSET_MS) % WEEK_MS // DAY_MS


# All time: already the blocking matrix's rows, one per cell and verdict.
rollup_totals = Table(
    "rollup_totals",
    metadata,
    Column("cell", BigInteger, nullable=False),
    Column("verdict", BigInteger, nullable=False),  # verdicts.id
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("cell", "verdict"),
    sqlite_with_rowid=False,
)
