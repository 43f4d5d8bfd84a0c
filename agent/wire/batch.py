"""Agent layer 3, wire: signed batches, the unit the agent uploads and the collector ingests.

A batch is ``{"b": body, "g": signature}``, where the body is the packed map
``{"v": 1, "a": agent id, "s": sequence, "t": created ms, "m": [measurement, ...], "e":
evictions, "c": [[ms, online], ...], "q": [records, checks], "r": version}``, each
measurement the map of ``agent.wire.measurement_to_obj``, each ``c`` entry a connectivity
check (a heartbeat), ``q`` what else waits in the agent's spool and ``r`` its software
version (both for the operator's agent health page; absent: not said).
``c`` entry is ``[ms, online, bps]`` for a check that also sampled a benign goodput
(bits per second, ``agent.daemon.goodput``).
The signature is Ed25519 by the agent's key (``agent.identity``) over a domain prefix and the
body bytes, so the collector verifies exactly the bytes it then decodes.
docs/wire-format.md, "Batches", lists the fields and limits.

This module makes batches and holds what both sides share (limits, errors, the decoded
:class:`Batch`); the collector's reading and checking is ``agent.batch_verify``. A refusal is
only ever a :class:`BatchError` (a ``WireError``), with a machine-readable ``reason``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed

from agent import __version__
from agent.wire.errors import WireError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.model.measurement import SiteMeasurement

# agent.wire (the record codec, and dnspython behind it) is imported inside the functions that
# handle measurements: a heartbeat-only batch needs none of it, and the daemon's lean idle mode
# signs those with this module while staying light (docs/design/005-lean-idle.md).

__all__ = [
    "REPORTED_VERSION",
    "BatchAgentError",
    "BatchDuplicateIdError",
    "BatchError",
    "BatchSchemaError",
    "BatchSignatureError",
    "BatchSizeError",
    "BatchTimestampError",
    "Envelope",
    "check_agent_id",
    "check_spool",
    "check_uint",
    "check_version",
    "encode_batch",
]

VERSION = 1
# A signature is only ever valid for the message type it was made for: without the prefix,
# a signature the agent's key made over some other message (an enrolment proof, a future
# format) could be replayed as a batch whose body happens to be those bytes.
SIGNATURE_DOMAIN = b"netsonde-batch-v1\0"
SIGNATURE_SIZE = 64
MAX_MEASUREMENTS = 1000
# A week of checks at the default 5-minute interval: a shutdown's backlog in one batch.
MAX_CHECKS = 2016
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_AGENT_ID = 64
MAX_GOODPUT_BPS = 10**12  # a terabit: a larger goodput is a broken clock, not a link
DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000
# A week-long shutdown, then a backlog drained at the agent's pace, must still get in.
DEFAULT_MAX_AGE_MS = 30 * 24 * 3600 * 1000
_UINT_MAX = (1 << 63) - 1
BODY_KEYS = frozenset("vastmecqr")
# An agent's version as it reports it: a PEP 440 version, local part included (setuptools-scm
# makes "0.2.1.dev12+g1a2b3c4d.d20261201"), and nothing a page or a log could misread.
MAX_VERSION = 64
_VERSION_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-_")


class BatchError(WireError):
    """A batch refused; ``reason`` is one of signature, schema, size, timestamp,
    duplicate_id, agent, for the collector's metrics and 4xx responses."""

    reason: ClassVar[str] = "schema"


class BatchSignatureError(BatchError):
    reason = "signature"


class BatchSchemaError(BatchError):
    reason = "schema"


class BatchSizeError(BatchError):
    reason = "size"


class BatchTimestampError(BatchError):
    reason = "timestamp"


class BatchDuplicateIdError(BatchError):
    reason = "duplicate_id"


class BatchAgentError(BatchError):
    reason = "agent"


@dataclass(frozen=True)
class Envelope:
    """The outer layer of a batch. Nothing in it is authenticated yet: ``agent_id`` is only
    the claim that says which key to verify ``signature`` with."""

    agent_id: str
    body: bytes = field(repr=False)  # up to 4 MiB: not for logs
    signature: bytes = field(repr=False)


def check_uint(value: Any, name: str) -> int:
    """``value`` as an unsigned 64-bit integer; BatchSchemaError naming ``batch.name``."""
    # bool is an int subclass, and msgpack keeps true/false apart from integers.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT_MAX:
        raise BatchSchemaError(f"batch.{name}: expected an unsigned 64-bit integer")
    return value


def check_agent_id(value: Any) -> str:
    """``value`` as an agent id; BatchAgentError if it cannot be one."""
    # Printable ASCII without spaces: the id ends up in logs, metrics and file names.
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_AGENT_ID
        or not all("!" <= c <= "~" for c in value)
    ):
        raise BatchAgentError(
            f"batch.a: the agent id must be 1 to {MAX_AGENT_ID} printable ASCII characters "
            f"without spaces, got {value!r:.80}"
        )
    return value


def check_version(value: Any) -> str:
    """``value`` as an agent version (``r``); BatchSchemaError if it cannot be one."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_VERSION
        or not _VERSION_CHARS.issuperset(value)
    ):
        raise BatchSchemaError(
            f"batch.r: the agent version must be 1 to {MAX_VERSION} letters, digits or "
            f"'.+-_', got {value!r:.80}"
        )
    return value


def check_spool(value: Any) -> tuple[int, int]:
    """``value`` as the spool depth ``q``, [records, checks]; BatchSchemaError otherwise."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise BatchSchemaError("batch.q: expected [records, checks] waiting in the spool")
    return check_uint(value[0], "q[0]"), check_uint(value[1], "q[1]")


def reported_version(version: str) -> str | None:
    """``version`` as batches report it (``r``); None for one the collector would refuse,
    which must never cost an agent its batches."""
    try:
        return check_version(version)
    except BatchSchemaError:
        return None


REPORTED_VERSION = reported_version(__version__)  # this agent's


def encode_batch(
    agent_id: str,
    seq: int,
    measurements: Sequence[SiteMeasurement],
    key: Ed25519PrivateKey,
    *,
    created_ms: int | None = None,
    evictions: int = 0,
    checks: Sequence[tuple[int, bool]] = (),
    spool: tuple[int, int] | None = None,
    version: str | None = None,
    goodput: Mapping[int, int] | None = None,
) -> bytes:
    """Refuses what the collector would refuse (bar the clock), so the uploader learns to
    split or fix a batch here rather than from a 4xx it would otherwise retry forever.
    ``spool`` (records, checks waiting besides the batch's) and ``version``: None, unsaid."""
    if len(measurements) > MAX_MEASUREMENTS:
        raise BatchSizeError(
            f"batch.m: {len(measurements)} measurements, at most {MAX_MEASUREMENTS} per batch"
        )
    objs: list[dict[str, Any]] = []
    seen: set[str] = set()
    if measurements:
        from agent.wire.record import MAX_RECORD, measurement_to_obj
    for index, m in enumerate(measurements):
        if m.id in seen:
            raise BatchDuplicateIdError(f"batch.m[{index}]: measurement id {m.id} repeated")
        seen.add(m.id)
        try:
            obj = measurement_to_obj(m)
        except WireError as exc:
            raise BatchSchemaError(f"batch.m[{index}]: {exc}") from None
        # Packed alone only to refuse here a record that ingest would refuse as oversize.
        if (size := len(msgpack.packb(obj, use_bin_type=True))) > MAX_RECORD:
            raise BatchSizeError(
                f"batch.m[{index}]: {size} bytes, records are at most {MAX_RECORD}"
            )
        objs.append(obj)
    body: dict[str, Any] = {
        "v": VERSION,
        "a": check_agent_id(agent_id),
        "s": check_uint(seq, "s"),
        "t": check_uint(int(time.time() * 1000) if created_ms is None else created_ms, "t"),
        "m": objs,
    }
    if check_uint(evictions, "e"):
        body["e"] = evictions  # absent means 0, as in the measurement schema
    if checks:
        body["c"] = _checks_to_obj(checks, goodput or {})  # absent means none
    if spool is not None:
        body["q"] = list(check_spool(spool))
    if version is not None:
        body["r"] = check_version(version)
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    data: bytes = msgpack.packb(
        {"b": packed, "g": key.sign(SIGNATURE_DOMAIN + packed)}, use_bin_type=True
    )
    if len(data) > MAX_BATCH_BYTES:
        raise BatchSizeError(f"batch: {len(data)} bytes, at most {MAX_BATCH_BYTES}")
    return data


def _checks_to_obj(
    checks: Sequence[tuple[int, bool]], goodput: Mapping[int, int]
) -> list[list[Any]]:
    if len(checks) > MAX_CHECKS:
        raise BatchSizeError(f"batch.c: {len(checks)} checks, at most {MAX_CHECKS} per batch")
    objs: list[list[Any]] = []
    seen: set[int] = set()
    for index, (ms, online) in enumerate(checks):
        if check_uint(ms, f"c[{index}][0]") in seen:
            raise BatchDuplicateIdError(f"batch.c[{index}]: check time {ms} repeated")
        if not isinstance(online, bool):
            raise BatchSchemaError(f"batch.c[{index}][1]: expected a bool (online)")
        seen.add(ms)
        bps = goodput.get(ms)
        if bps is None:
            objs.append([ms, online])
        elif isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= MAX_GOODPUT_BPS:
            raise BatchSchemaError(f"batch.c[{index}][2]: expected bits per second")
        else:
            objs.append([ms, online, bps])
    return objs
