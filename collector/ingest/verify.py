"""Collector ingest: reading and checking signed batches, the collector's side of
``agent.wire.batch``.

A batch is read in two steps. :func:`read_batch_envelope` gives the claimed agent id, to look
up its key, without trusting or allocating anything. :func:`verify_batch` checks the
signature before anything else (:func:`check_signature`) and only then decodes and validates
(:func:`read_signed_batch`). Each raises only :class:`agent.wire.batch.BatchError`, whatever the
bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
from cryptography.exceptions import InvalidSignature

from agent.wire.batch import (
    BODY_KEYS,
    DEFAULT_MAX_AGE_MS,
    DEFAULT_MAX_SKEW_MS,
    MAX_AGENT_ID,
    MAX_BATCH_BYTES,
    MAX_CHECKS,
    MAX_GOODPUT_BPS,
    MAX_MEASUREMENTS,
    SIGNATURE_DOMAIN,
    SIGNATURE_SIZE,
    VERSION,
    BatchAgentError,
    BatchDuplicateIdError,
    BatchError,
    BatchSchemaError,
    BatchSignatureError,
    BatchSizeError,
    BatchTimestampError,
    Envelope,
    check_agent_id,
    check_spool,
    check_uint,
    check_version,
)
from collector.ingest.columns import RecordColumns

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from agent.model.measurement import SiteMeasurement


__all__ = [
    "Batch",
    "check_signature",
    "prepare_verifier",
    "read_batch_envelope",
    "read_signed_batch",
    "verify_batch",
]


@dataclass(frozen=True)
class Batch:
    agent_id: str
    seq: int
    created_ms: int
    evictions: int  # running total of records the agent's spool dropped unsent
    columns: list[RecordColumns]  # each record as the agent signed it, and its columns
    # Connectivity checks (ms, online), in the order sent: the agent's heartbeats.
    checks: list[tuple[int, bool]] = field(default_factory=list)
    # What else waited in the agent's spool (records, checks), and the agent's version;
    # None when the batch does not say (an older agent's).
    spool: tuple[int, int] | None = None
    version: str | None = None
    # The benign goodput some checks sampled (ms, bits per second): collector.degradation.
    goodput: list[tuple[int, int]] = field(default_factory=list)

    @property
    def records(self) -> list[bytes]:
        """Each measurement's wire record, the bytes the agent signed."""
        return [columns.record for columns in self.columns]

    @property
    def measurements(self) -> list[SiteMeasurement]:
        """The records decoded: for tools and tests; ingest needs only the columns."""
        from agent.wire.record import decode_measurement

        return [decode_measurement(record) for record in self.records]


_NONE: Any = object()  # an absent key (an explicit nil is then refused like any wrong type)


def prepare_verifier() -> None:
    """Builds what :func:`verify_batch` decodes with, now, in this thread: a collector calls
    it once at start, so no worker thread ever builds a decoder (collector.ingest.check)."""
    from collector.ingest.columns import record_check

    _body_decoder()
    record_check()


def _body_decoder() -> Any:
    # Built on first use: only the collector verifies batches, and msgspec is in its extra.
    import msgspec

    from collector.ingest.check import build_once

    def build() -> Any:
        measurements = Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_MEASUREMENTS)]
        body = msgspec.defstruct(
            "BatchBody",
            [(k, measurements if k == "m" else object, _NONE) for k in sorted(BODY_KEYS)],
            kw_only=True,
            forbid_unknown_fields=True,
        )
        return msgspec.msgpack.Decoder(body)

    return build_once("batch body", build)


def _scalar_unpacker(data: bytes, max_str: int, max_bin: int) -> Any:
    """An unpacker that builds nothing but scalars: arrays and maps must be walked by their
    headers. What unauthenticated bytes can make it allocate is then bounded by their length,
    where nested containers could take a hundred times that."""
    unpacker = msgpack.Unpacker(
        raw=False, max_buffer_size=max(len(data), 1), max_str_len=max_str,
        max_bin_len=max_bin, max_array_len=0, max_map_len=0, max_ext_len=0,
    )  # fmt: skip
    unpacker.feed(data)
    return unpacker


def read_batch_envelope(data: bytes) -> Envelope:
    """The claimed agent id, the body and the signature, trusting none of them.

    Cheap and allocation-bounded, since it runs for anyone who can reach the collector: the
    body is walked, not decoded, only far enough to find the agent id and check what can be
    checked before the signature (its top-level keys, the number of measurements).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BatchSchemaError("batch: expected bytes")
    if len(data) > MAX_BATCH_BYTES:
        raise BatchSizeError(f"batch: {len(data)} bytes, at most {MAX_BATCH_BYTES}")
    unpacker = _scalar_unpacker(data, 16, MAX_BATCH_BYTES)
    outer: dict[str, Any] = {}
    try:
        if unpacker.read_map_header() != 2:
            raise BatchSchemaError('batch: expected a map of exactly the keys "b" and "g"')
        for _ in range(2):
            key = unpacker.unpack()
            if key not in ("b", "g") or key in outer:
                raise BatchSchemaError(f"batch: unexpected or repeated key {key!r:.40}")
            outer[key] = unpacker.unpack()
        trailing = len(data) - unpacker.tell()
    except BatchError:
        raise  # a ValueError too, but already the precise error
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BatchSchemaError(f"batch: not valid msgpack: {exc}") from None
    if trailing:
        raise BatchSchemaError(f"batch: {trailing} trailing bytes")
    body, signature = outer["b"], outer["g"]
    if not isinstance(body, bytes):
        raise BatchSchemaError("batch.b: expected the body as bin")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise BatchSchemaError(f"batch.g: expected a {SIGNATURE_SIZE}-byte Ed25519 signature")
    return Envelope(_scan_body(body), body, signature)


def _scan_body(body: bytes) -> str:
    """The body's agent id, after checking it holds no more measurements than allowed.

    Walked by its headers, and only as far as needed: once the id is found, the
    measurements are not skipped (that cost the collector's event loop a millisecond a
    batch). Keys are checked known and unrepeated as far as the walk goes; the rest of
    the body (later repeats, trailing bytes) is checked by the full decode, after the
    signature.
    """
    unpacker = _scalar_unpacker(body, 4 * MAX_AGENT_ID, 32)
    agent: Any = None
    seen: set[str] = set()
    try:
        size = unpacker.read_map_header()
        if size > len(BODY_KEYS):
            raise BatchSchemaError(f"batch body: {size} keys, expected {sorted(BODY_KEYS)}")
        for _ in range(size):
            key = unpacker.unpack()
            if not isinstance(key, str) or key not in BODY_KEYS or key in seen:
                raise BatchSchemaError(f"batch body: unexpected or repeated key {key!r:.40}")
            seen.add(key)
            if key == "a":
                agent = unpacker.unpack()
            elif key == "m":
                count = _array_length(body, unpacker.tell())
                if count > MAX_MEASUREMENTS:
                    raise BatchSizeError(
                        f"batch.m: {count} measurements, at most {MAX_MEASUREMENTS} per batch"
                    )
                if "a" in seen:
                    break
                unpacker.skip()
            else:
                unpacker.skip()
        else:
            if trailing := len(body) - unpacker.tell():
                raise BatchSchemaError(f"batch body: {trailing} trailing bytes")
    except BatchError:
        raise  # a ValueError too, but already the precise error
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BatchSchemaError(f"batch body: not valid msgpack: {exc}") from None
    if "a" not in seen:
        raise BatchSchemaError("batch.a: missing (the agent id)")
    return check_agent_id(agent)


def _array_length(data: bytes, at: int) -> int:
    """The length in the msgpack array header at ``at``; 0 for anything else (which the
    full decode refuses later)."""
    head = data[at] if at < len(data) else 0
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head in (0xDC, 0xDD):
        size = 2 if head == 0xDC else 4
        return int.from_bytes(data[at + 1 : at + 1 + size])
    return 0


def _map_length(data: bytes) -> int:
    """The length in the msgpack map header that starts ``data``; -1 for anything else."""
    head = data[0] if data else 0
    if 0x80 <= head <= 0x8F:
        return head & 0x0F
    if head in (0xDE, 0xDF):
        size = 2 if head == 0xDE else 4
        return int.from_bytes(data[1 : 1 + size])
    return -1


_STARTED_MS, _KEY = attrgetter("started_ms"), attrgetter("key")  # of RecordColumns


def _check_time(value: int, name: str, now_ms: int, max_skew_ms: int, max_age_ms: int) -> None:
    if value > now_ms + max_skew_ms:
        raise BatchTimestampError(
            f"{name}: {value} is {(value - now_ms) / 1000:.0f} s in the future, beyond the "
            f"{max_skew_ms / 1000:.0f} s allowed for clock skew; check the agent's clock"
        )
    if value < now_ms - max_age_ms:
        raise BatchTimestampError(
            f"{name}: {value} is {(now_ms - value) / 86_400_000:.1f} days old, more than the "
            f"{max_age_ms / 86_400_000:.1f} days accepted"
        )


def _parse_checks(
    value: Any, now_ms: int, max_skew_ms: int, max_age_ms: int
) -> tuple[list[tuple[int, bool]], list[tuple[int, int]]]:
    """The connectivity checks ``[[ms, online], ...]``: unique by time, each as sane in time
    as a measurement, since the collector dates outages by them; and the goodput samples of
    those that carry one (``[ms, online, bps]``)."""
    if not isinstance(value, list):
        raise BatchSchemaError("batch.c: expected an array of [ms, online] checks")
    if len(value) > MAX_CHECKS:
        raise BatchSizeError(f"batch.c: {len(value)} checks, at most {MAX_CHECKS} per batch")
    checks: list[tuple[int, bool]] = []
    goodput: list[tuple[int, int]] = []
    seen: set[int] = set()
    for index, item in enumerate(value):
        where = f"batch.c[{index}]"
        if not isinstance(item, list) or len(item) not in (2, 3) or not isinstance(item[1], bool):
            raise BatchSchemaError(f"{where}: expected [ms, online] (uint, bool)")
        if len(item) == 3:
            bps = check_uint(item[2], f"c[{index}][2]")
            if bps > MAX_GOODPUT_BPS:
                raise BatchSchemaError(f"{where}: a goodput of {bps} bits per second")
            goodput.append((item[0], bps))
        ms = check_uint(item[0], f"c[{index}][0]")
        _check_time(ms, f"{where} (checked)", now_ms, max_skew_ms, max_age_ms)
        if ms in seen:
            raise BatchDuplicateIdError(f"{where}: check time {ms} repeated in the batch")
        seen.add(ms)
        checks.append((ms, item[1]))
    return checks, goodput


def check_signature(envelope: Envelope, public_key: Ed25519PublicKey) -> None:
    """The signature alone: cheap (no decoding), so a collector can refuse forgeries before
    they count against the agent's rate limit or cost it a decode."""
    body, signature = envelope.body, envelope.signature
    if not isinstance(body, bytes) or len(body) > MAX_BATCH_BYTES:
        raise BatchSizeError(f"batch.b: expected bin of at most {MAX_BATCH_BYTES} bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise BatchSchemaError(f"batch.g: expected a {SIGNATURE_SIZE}-byte Ed25519 signature")
    try:
        public_key.verify(signature, SIGNATURE_DOMAIN + body)
    except InvalidSignature:
        raise BatchSignatureError(
            f"batch: the signature does not verify with the key of agent {envelope.agent_id!r}"
        ) from None


def verify_batch(
    envelope: Envelope,
    public_key: Ed25519PublicKey,
    *,
    now_ms: int,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
) -> Batch:
    """The batch, checked: the signature first, so nothing unauthenticated is decoded, then
    the schema, sizes, timestamps and unique ids. All or nothing, as ingest stores it."""
    check_signature(envelope, public_key)
    return read_signed_batch(
        envelope, now_ms=now_ms, max_skew_ms=max_skew_ms, max_age_ms=max_age_ms
    )


def read_signed_batch(
    envelope: Envelope,
    *,
    now_ms: int,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
) -> Batch:
    """:func:`verify_batch` after the signature: only for an envelope that
    :func:`check_signature` has just accepted. The collector checks signatures before its
    rate limit and this later, and need not hash the body twice (~1 ms a batch of 500)."""
    from agent.wire.record import MAX_RECORD
    from collector.ingest.columns import RecordError, check_measurements

    try:
        # Measurements stay undecoded here (msgspec.Raw, slices of the body): each is
        # checked, and stored, as the bytes the agent signed. The other fields are small;
        # a signed body is at most MAX_BATCH_BYTES, which bounds what they can allocate.
        decoded = _body_decoder().decode(envelope.body)
    except ValueError as exc:  # msgspec's ValidationError and DecodeError
        raise BatchSchemaError(f"batch body: {exc}") from None
    obj = {key: getattr(decoded, key) for key in BODY_KEYS if getattr(decoded, key) is not _NONE}
    # msgspec keeps the last of repeated keys; with unknown keys refused, the map's size
    # must be the number of keys present.
    if _map_length(envelope.body) != len(obj):
        raise BatchSchemaError(f"batch body: a repeated key (of {', '.join(sorted(obj))})")
    if missing := [key for key in "vastm" if key not in obj]:
        raise BatchSchemaError(f"batch.{missing[0]}: missing")
    # The envelope's id chose the key; an Envelope built by hand may name another agent
    # than the signed body does.
    if obj["a"] != envelope.agent_id:
        raise BatchAgentError("batch.a: the body names another agent than the envelope")
    if type(obj["v"]) is not int or obj["v"] != VERSION:
        raise BatchSchemaError(f"batch.v: unsupported version {obj['v']!r:.40} (expected 1)")
    seq, created_ms = check_uint(obj["s"], "s"), check_uint(obj["t"], "t")
    evictions = check_uint(obj.get("e", 0), "e")
    checks, goodput = _parse_checks(obj.get("c", []), now_ms, max_skew_ms, max_age_ms)
    if not isinstance(obj["m"], list):
        raise BatchSchemaError("batch.m: expected an array of measurements")
    _check_time(created_ms, "batch.t (created)", now_ms, max_skew_ms, max_age_ms)

    records = list(map(bytes, obj["m"]))
    try:
        columns = check_measurements(records)
    except RecordError as exc:
        error = BatchSizeError if len(records[exc.index]) > MAX_RECORD else BatchSchemaError
        raise error(f"batch.m[{exc.index}]: {exc}") from None
    _check_records(columns, now_ms, max_skew_ms, max_age_ms)
    spool = None if "q" not in obj else check_spool(obj["q"])
    version = None if "r" not in obj else check_version(obj["r"])
    return Batch(
        envelope.agent_id, seq, created_ms, evictions, columns, checks, spool, version, goodput
    )


def _check_records(
    columns: list[RecordColumns], now_ms: int, max_skew_ms: int, max_age_ms: int
) -> None:
    """The records' times within bounds, and their ids unique in the batch. Over the whole
    batch first, in C; the loops that name the offending record run only for a batch about
    to be refused."""
    started = list(map(_STARTED_MS, columns))
    if started and (min(started) < now_ms - max_age_ms or max(started) > now_ms + max_skew_ms):
        for index, started_ms in enumerate(started):
            _check_time(started_ms, f"batch.m[{index}].started_ms", now_ms, max_skew_ms, max_age_ms)
    if len(set(map(_KEY, columns))) != len(columns):
        seen: set[bytes] = set()
        for index, record_columns in enumerate(columns):
            if record_columns.key in seen:
                raise BatchDuplicateIdError(
                    f"batch.m[{index}]: measurement id {record_columns.id} repeated in the batch"
                )
            seen.add(record_columns.key)
