"""Collector ingest: enrolment and batch acceptance, behind the thin handlers of ``collector.web``.

Every way a request can be bad ends as :class:`ApiError` (status, message, optional
machine-readable reason), which ``collector.web.errors`` turns into a JSON 4xx; nothing the
client sends reaches a 5xx. Batches are checked in order of cost: size, envelope, agent, signature
and sequence number (before the rate limit, so neither forgeries nor replays of an agent's
own batches can use up its allowance), rate limit, then the full check and the write,
together on a worker thread. The sequence rule is in docs/wire-format.md ("Sequence
numbers"): a batch numbered below the agent's last is a replay (409), and the last one sent
again is answered as stored without being written again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed

from agent.wire.batch import BatchError, Envelope, check_uint
from agent.wire.keys import IdentityError, public_key_from_bytes
from collector.errors import ApiError
from collector.ingest.verify import check_signature, read_batch_envelope, read_signed_batch
from collector.storage import (
    AgentRow,
    AgentStatus,
    BatchSeq,
    EnrollError,
    IngestRecord,
    IngestResult,
    RejectedBatch,
    ReplayedBatch,
    Storage,
    UnknownToken,
)
from collector.storage.agents import OLDER, SAME

MAX_TOKEN = 256  # issued tokens are 32 characters; anything longer is not one of ours


def now_ms() -> int:
    return int(time.time() * 1000)


# -- enrolment -----------------------------------------------------------------------


def parse_enroll(data: Any) -> tuple[str, bytes]:
    """``{"token": str, "public_key": base64 of the 32 raw Ed25519 bytes}``."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    token, key_text = data.get("token"), data.get("public_key")
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        raise ApiError(400, "'token' must be the enrolment token, a string")
    if not isinstance(key_text, str) or len(key_text) > 128:
        raise ApiError(400, "'public_key' must be the base64 of the 32-byte Ed25519 key")
    try:
        key = base64.b64decode(key_text, validate=True)
        public_key_from_bytes(key)
    except (binascii.Error, ValueError, IdentityError) as exc:
        raise ApiError(400, f"'public_key': {exc}") from None
    return token, key


async def enroll(storage: Storage, data: Any) -> str:
    """The new agent's id. An unknown token is 401; a known one that is used up or expired
    is 403 (the token was real, but it grants nothing any more)."""
    token, key = parse_enroll(data)
    try:
        return await asyncio.to_thread(storage.redeem_enroll_token, token, key, now_ms())
    except UnknownToken as exc:
        raise ApiError(401, str(exc)) from None
    except EnrollError as exc:  # UsedToken, ExpiredToken
        raise ApiError(403, str(exc)) from None


# -- ingest ----------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per agent id. Buckets exist only for enrolled agents (the id is looked
    up first), so unauthenticated senders cannot grow the table."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, agent_id: str) -> float:
        """0 if a batch may go now (and takes a token), else the seconds until it may."""
        now = self.clock()
        bucket = self._buckets.setdefault(agent_id, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


async def ingest(
    storage: Storage,
    limiter: RateLimiter,
    data: bytes,
    *,
    asn: int | None = None,
    cc: str | None = None,
    executor: Executor | None = None,
) -> IngestResult:
    """Verifies one signed batch and stores it, all or nothing, with the sender's network
    (``collector.enrich``; the address itself never gets here). The blocking steps run in
    ``executor`` (the app's ingest threads; asyncio's default when None)."""
    loop = asyncio.get_running_loop()
    try:
        envelope = read_batch_envelope(data)
    except BatchError as exc:
        raise ApiError(400, str(exc), exc.reason) from None
    # Before the rate limit: a forger who knows an agent's id, or anyone replaying batches
    # it captured, must not use up the agent's allowance.
    agent, seq = await loop.run_in_executor(executor, authenticate, storage, envelope)
    order = agent.batch_order(seq)
    if order == OLDER:
        raise replayed(agent.id, seq, agent.last_seq)
    received = now_ms()
    try:
        if order == SAME:
            # Stored whole when it was accepted: nothing to write, nor to charge for.
            return await loop.run_in_executor(executor, stored_before, envelope, received)
        if wait := limiter.check(agent.id):
            raise ApiError(429, "too many batches from this agent; slow down", "rate", wait)
        # One trip to a worker thread for the decode and the write: the event loop is left
        # free for the other uploads, and no per-record objects cross back to it.
        return await loop.run_in_executor(
            executor, store_signed_batch, storage, envelope, received, asn, cc, seq
        )
    except BatchError as exc:
        raise ApiError(400, str(exc), exc.reason) from None
    except ReplayedBatch:
        # A later batch of the agent's was written between the check above and this write.
        raise replayed(agent.id, seq, None) from None
    except RejectedBatch as exc:
        raise ApiError(400, str(exc), "schema") from None
    except ValueError as exc:  # a record's URL the store cannot key by its host
        raise ApiError(400, f"batch: {exc}", "schema") from None


def replayed(agent_id: str, seq: BatchSeq, last_seq: int | None) -> ApiError:
    last = "" if last_seq is None else f" (the last: {last_seq})"
    return ApiError(
        409,
        f"batch {seq.seq} of agent {agent_id!r} is a replay: a batch numbered higher, or "
        f"another batch numbered the same, was accepted already{last}",
        "replay",
    )


def batch_seq(envelope: Envelope) -> BatchSeq:
    """The signed body's sequence number, with the signature; ApiError if it has none.

    Walked to the ``s`` key, which the agent writes before the measurements, not decoded:
    the full decode comes after the rate limit. Only for an envelope whose signature was
    checked, so the body is the agent's own, at most 4 MiB."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(envelope.body), 1))
    unpacker.feed(envelope.body)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "s":
                return BatchSeq(check_uint(unpacker.unpack(), "s"), envelope.signature)
            unpacker.skip()
    except BatchError as exc:
        raise ApiError(400, str(exc), exc.reason) from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ApiError(400, f"batch body: not valid msgpack: {exc}", "schema") from None
    raise ApiError(400, "batch.s: missing", "schema")


def authenticate(storage: Storage, envelope: Envelope) -> tuple[AgentRow, BatchSeq]:
    """The enrolled, unrevoked agent that signed the batch, and the batch's number, else
    ApiError; blocks (one trip to a worker thread for the lookup and the signature)."""
    agent = storage.get_agent(envelope.agent_id)
    if agent is None:
        raise ApiError(401, f"unknown agent {envelope.agent_id!r}: enrol first", "agent")
    if agent.revoked_ms is not None:
        raise ApiError(403, f"agent {agent.id!r} has been revoked", "revoked")
    try:
        check_signature(envelope, public_key_from_bytes(agent.public_key))
    except BatchError as exc:
        raise ApiError(400, str(exc), exc.reason) from None
    except IdentityError as exc:
        raise ApiError(400, f"batch: {exc}", "schema") from None
    return agent, batch_seq(envelope)


def store_signed_batch(
    storage: Storage,
    envelope: Envelope,
    received_ms: int,
    asn: int | None,
    cc: str | None,
    seq: BatchSeq | None = None,
) -> IngestResult:
    """Checks and stores a batch whose signature has been checked, as the agent's last batch
    numbered ``seq``; blocks (a worker thread's job). BatchError, RejectedBatch,
    ReplayedBatch or ValueError for a batch refused whole."""
    batch = read_signed_batch(envelope, now_ms=received_ms)
    records = IngestRecord.from_columns(batch.columns)
    if seq is not None:
        # What the batch says of its agent, for the operator's agent health page; the body
        # kept with its records, so that each can be checked on its own against the key
        # (docs/design/007-evidence.md).
        waiting, checks = batch.spool or (None, None)
        status = AgentStatus(batch.version, waiting, checks, batch.evictions)
        seq = seq._replace(status=status, body=envelope.body if records else None)
    stored = storage.ingest(envelope.agent_id, records, asn, cc, received_ms, batch.checks, seq=seq)
    # After the batch: one refused whole stores no sample either (collector.storage.goodput).
    storage.store_goodput(envelope.agent_id, batch.goodput, asn, cc, received_ms)
    return stored


def stored_before(envelope: Envelope, received_ms: int) -> IngestResult:
    """The answer to the agent's last accepted batch sent again: what storing it would say,
    every record a duplicate and every check stored, since it was stored whole. Checked as
    any batch (it may have aged past the time limits meanwhile); blocks."""
    batch = read_signed_batch(envelope, now_ms=received_ms)
    return IngestResult(
        stored=[], duplicates=[c.id for c in batch.columns], checks=len(batch.checks)
    )
