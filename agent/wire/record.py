"""Agent layer 3, wire: msgpack schema v3, the one format measurements travel and rest in.

A record is a msgpack map ``{"v": 2, ...}`` (version 1 records, from before redirect
chains, IPv6 and throttle tests, still decode) with one-character keys. Durations and
timestamps are integer milliseconds, IP addresses 4/16-byte bin, SHA-256 hashes 32-byte
bin, the id its 16 UUID bytes. Failures, TLS versions, ciphers, ALPN and content types are
small integers from append-only tables (``agent.wire.tables``; a value missing from its
table travels as its text, so those fields are ``int | str``); rcodes are dnspython's
numbers. Within a measurement each distinct address or hash is stored once in the top-level
``b`` array and referred to by index, since agent and control mostly see the same ones;
titles, servers and issuers likewise in the ``s`` array. A key is absent when its field
holds the default: None, empty, False, 0, or what the record implies (the URL's host and
port, the endpoint's address, the UUIDv7's time, port 53, qtype A, path /).
docs/wire-format.md has the field-by-field table; keep it in step with the specs below.

Round trip is exact except that float ms are rounded to integers (ties to even) and
titles are cut to 128 characters. Decoding validates everything and raises only
:class:`WireError`, whatever the bytes: records come from the network."""

from __future__ import annotations

import functools
import uuid
from typing import Any
from urllib.parse import urlsplit

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed

from agent.model.measurement import Hop, SiteMeasurement, Vantage, Verdict
from agent.model.observations import (
    DNSExchange,
    DNSObservation,
    DNSReply,
    EndpointObservation,
    HTTPRoundTrip,
    SystemResolution,
    TCPConnect,
    ThrottleObservation,
    TLSHandshake,
    Transfer,
)
from agent.model.protocols import ProtocolObservation, ProtocolProbe
from agent.model.trace import TraceAttempt, TraceObservation, TracePacket, TraceReference
from agent.wire.codec import (
    LONG,
    MAX_BINS,
    MAX_TEXTS,
    REQUIRED,
    SHORT,
    Addr,
    Bool,
    Ctxt,
    Enum,
    Evidence,
    Field,
    List,
    Ms,
    Rcode,
    Sha256,
    Struct,
    Text,
    UInt,
    Uuid,
    WireError,
    check_bin,
)
from agent.wire.tables import (
    ALPN_CODES,
    CIPHER_CODES,
    CONTENT_TYPE_CODES,
    FAILURE_CODES,
    TLS_VERSION_CODES,
)

__all__ = [
    "FAILURE_CODES",
    "MAX_HOPS",
    "VERSION",
    "VERSIONS",
    "WireError",
    "decode_measurement",
    "decode_vantage",
    "encode_measurement",
    "encode_vantage",
    "measurement_from_obj",
    "measurement_to_obj",
]

# Version 2 (December 2026) added redirect hops ("h"), AAAA answers, the text table ("s"),
# throttle tests ("T") and protocol tests ("P"), and later traces ("R"); every new record is
# version 2, and version 1 records, from before, still decode.
VERSION = 2
VERSIONS = frozenset((1, 2))
_V2_KEYS = frozenset(("h", "s", "T", "P", "R"))  # top-level keys a version 1 record cannot have
_THROTTLE_KEY, _PROTOCOLS_KEY, _TRACE_KEY = "T", "P", "R"
MAX_TRACE_ATTEMPTS = 160  # 2 per TTL up to 32, each silent TTL twice, and the last
MAX_TRACE_PACKETS = 32  # agent.probes.trace.MAX_PACKETS
_MAX_ARRAY = MAX_TRACE_ATTEMPTS  # the longest array any record may hold
MAX_PROBES = 16
MAX_TRANSFERS = 64
MAX_HOPS = 10  # agent.verdict.chain.MAX_REDIRECTS; the wire refuses longer chains
MAX_RECORD = 64 * 1024
MAX_TITLE = 128


def _record_context(attrs: dict[str, Any]) -> dict[str, Any]:
    """Names default to the URL's host, endpoint ports to its port, started_ms to the time
    inside the UUIDv7 id: each is then written only where it differs."""
    ident = attrs.get("id")
    try:
        id_ms = uuid.UUID(ident).int >> 80 if isinstance(ident, str) else 0
    except ValueError:
        id_ms = 0
    url = attrs.get("url")
    return _implied(id_ms, url if isinstance(url, str) else "")


def _implied(id_ms: int, url: str) -> dict[str, Any]:
    context: dict[str, Any] = {"id_ms": id_ms, **_url_context(url)}
    return {k: v for k, v in context.items() if v}


@functools.lru_cache(maxsize=4096)
def _url_context(url: str) -> dict[str, Any]:
    # Cached: a test list is a few hundred URLs, measured again and again.
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return {}  # a malformed url implies nothing; every field is then written out
    return {"host": (parts.hostname or "").rstrip("."), "target_port": port}


_FAILURE = Enum(FAILURE_CODES)
_HOST = Ctxt("host")
_R = REQUIRED

_TCP = Struct(TCPConnect, (
    Field("ip", "a", Addr(), Ctxt("ip")), Field("port", "p", UInt(65535), Ctxt("port")),
    Field("ms", "d", Ms(), _R), Field("failure", "f", _FAILURE),
))  # fmt: skip
_TLS = Struct(TLSHandshake, (
    Field("sni", "n", Text(), _HOST), Field("version", "v", Enum(TLS_VERSION_CODES, SHORT)),
    Field("cipher", "c", Enum(CIPHER_CODES, SHORT)), Field("alpn", "p", Enum(ALPN_CODES, SHORT)),
    Field("leaf_sha256", "l", Sha256()), Field("chain_sha256", "h", Sha256()),
    Field("chain_length", "k", UInt(65535), 0), Field("issuer", "i", Text(interned=True)),
    Field("validated", "o", Bool(), False), Field("validation_failure", "x", _FAILURE),
    Field("ms", "d", Ms(), _R), Field("failure", "f", _FAILURE),
))  # fmt: skip
_HTTP = Struct(HTTPRoundTrip, (
    Field("host", "n", Text(), _HOST), Field("path", "u", Text(LONG), "/"),
    Field("status", "s", UInt()), Field("server", "v", Text(interned=True)),
    Field("location", "l", Text(LONG)),
    Field("content_type", "c", Enum(CONTENT_TYPE_CODES, SHORT)),
    Field("content_length", "z", UInt()), Field("set_cookie_count", "k", UInt(), 0),
    Field("body_length", "b", UInt(), 0), Field("body_truncated", "t", Bool(), False),
    Field("body_sha256", "h", Sha256()),
    Field("title", "i", Text(MAX_TITLE, cut=True, interned=True)),
    Field("ms", "d", Ms(), _R), Field("failure", "f", _FAILURE), Field("fingerprint", "p", Text()),
))  # fmt: skip
_ENDPOINT = Struct(EndpointObservation, (
    Field("ip", "a", Addr(), _R), Field("port", "p", UInt(65535), Ctxt("target_port")),
    Field("tcp", "t", _TCP, _R), Field("tls", "s", _TLS), Field("tls_benign", "S", _TLS),
    Field("http", "h", _HTTP), Field("http_benign", "H", _HTTP),
), context=lambda a: {"ip": a.get("ip"), "port": a.get("port")},
   context_from=("ip", "port"))  # fmt: skip
_REPLY = Struct(DNSReply, (
    Field("source", "s", Addr(), Ctxt("server")), Field("port", "p", UInt(65535), 53),
    Field("ms", "d", Ms(), _R),
    Field("rcode", "r", Rcode(), "NOERROR"), Field("addresses", "a", List(Addr(), 64), ()),
    Field("answer_ttl", "l", UInt(2**32 - 1)), Field("ip_ttl", "h", UInt(255)),
))  # fmt: skip


def _exchange(qtype: str) -> Struct:
    """A public resolver's exchange; its replies' source is implied by the server it asked."""
    return Struct(DNSExchange, (
        Field("server", "s", Addr(), _R), Field("port", "p", UInt(65535), 53),
        Field("name", "n", Text(), _HOST), Field("qtype", "y", Text(16), qtype),
        Field("replies", "r", List(_REPLY, 64), ()), Field("ms", "d", Ms(), _R),
        Field("failure", "f", _FAILURE),
    ), context=lambda a: {"server": a.get("server")}, context_from=("server",))  # fmt: skip


def _system(qtype: str, nameservers: Any) -> Struct:
    """The system resolver's answer to one query type (written only where the record holds
    another: an address target's)."""
    return Struct(SystemResolution, (
        Field("name", "n", Text(), _HOST), Field("qtype", "y", Text(16), qtype),
        Field("nameservers", "m", List(Addr(), 16), nameservers), Field("server", "s", Addr()),
        Field("rcode", "r", Rcode()), Field("addresses", "a", List(Addr(), 64), ()),
        Field("answer_ttl", "l", UInt(2**32 - 1)), Field("ms", "d", Ms(), _R),
        Field("failure", "f", _FAILURE),
    ))  # fmt: skip


def _nameservers(attrs: dict[str, Any]) -> dict[str, Any]:
    # The AAAA query goes to the nameservers the A query went to.
    system = attrs.get("system")
    return {"nameservers": system.nameservers if isinstance(system, SystemResolution) else ()}


_DNS = Struct(DNSObservation, (
    Field("system", "s", _system("A", ()), _R),
    Field("public", "q", List(_exchange("A"), 16), ()),
    Field("system6", "S", _system("AAAA", Ctxt("nameservers"))),
    Field("public6", "Q", List(_exchange("AAAA"), 16), ()),
), context=_nameservers, context_from=("system",))  # fmt: skip
_VANTAGE = Struct(Vantage, (
    Field("dns", "n", _DNS, _R), Field("endpoints", "e", List(_ENDPOINT, 16), ()),
))  # fmt: skip
_VERDICT = Struct(Verdict, (
    Field("verdict", "v", Text(64), _R), Field("evidence", "e", Evidence(), {}),
))  # fmt: skip


def _hop_context(attrs: dict[str, Any]) -> dict[str, Any]:
    """A hop's names and ports default to its own URL's host and port."""
    url = attrs.get("url")
    return _implied(0, url if isinstance(url, str) else "")


_HOP = Struct(Hop, (
    Field("url", "u", Text(LONG), _R), Field("agent", "a", _VANTAGE, _R),
    Field("control", "c", _VANTAGE), Field("control_failure", "f", _FAILURE),
), context=_hop_context, context_from=("url",))  # fmt: skip
_TRANSFER = Struct(Transfer, (
    Field("up", "u", Bool(), False), Field("trigger", "k", Bool(), False),
    Field("connect_ms", "c", Ms(), _R), Field("handshake_ms", "s", Ms()),
    Field("ttfb_ms", "t", Ms()), Field("bytes", "b", UInt(), 0), Field("skip", "p", UInt(), 0),
    Field("us", "d", UInt(), 0), Field("total_us", "e", UInt(), 0),
    Field("status", "h", UInt(999)), Field("failure", "f", _FAILURE),
))  # fmt: skip
_THROTTLE = Struct(ThrottleObservation, (
    Field("trigger", "y", Text(16), _R), Field("name", "n", Text(), _HOST),
    Field("benign", "g", Text(), _R), Field("address", "a", Addr()),
    Field("port", "p", UInt(65535), 0), Field("transfers", "x", List(_TRANSFER, MAX_TRANSFERS), ()),
    Field("failure", "f", _FAILURE), Field("window_ms", "w", UInt(2**32 - 1), 0),
    Field("down_size", "s", UInt(2**32 - 1), 0), Field("up_size", "u", UInt(2**32 - 1), 0),
))  # fmt: skip
_PROBE = Struct(ProtocolProbe, (
    Field("shape", "y", Text(16), _R), Field("random", "r", Bool(), False),
    Field("site", "s", Bool(), False), Field("size", "z", UInt(65535), _R),
    Field("answered", "k", Bool(), False), Field("ms", "d", Ms(), _R),
    Field("tries", "t", UInt(255), 1), Field("failure", "f", _FAILURE),
))  # fmt: skip
_PROTOCOLS = Struct(ProtocolObservation, (
    Field("name", "n", Text(), _HOST), Field("benign", "g", Text(), _R),
    Field("address", "a", Addr()), Field("udp_port", "p", UInt(65535), 0),
    Field("tcp_port", "q", UInt(65535), 0), Field("site_address", "s", Addr()),
    Field("probes", "x", List(_PROBE, MAX_PROBES), ()), Field("failure", "f", _FAILURE),
))  # fmt: skip
_TRACE_PACKET = Struct(TracePacket, (
    Field("kind", "k", Text(8), _R), Field("ttl", "t", UInt(255), _R),
    Field("ip_id", "i", UInt(65535)), Field("ms", "d", Ms(), _R),
))  # fmt: skip
_TRACE_ATTEMPT = Struct(TraceAttempt, (
    Field("ttl", "t", UInt(255), _R), Field("trigger", "k", Bool(), False),
    Field("reaction", "r", Text(16), _R), Field("router", "a", Addr()),
    Field("ms", "d", Ms(), _R), Field("status", "h", UInt(999)),
    Field("fingerprint", "g", Text()),
    Field("packets", "x", List(_TRACE_PACKET, MAX_TRACE_PACKETS), ()),
))  # fmt: skip
_TRACE_REFERENCE = Struct(TraceReference, (
    Field("address", "a", Addr(), _R), Field("port", "p", UInt(65535), _R),
    Field("packet", "x", _TRACE_PACKET),
))  # fmt: skip
_TRACE = Struct(TraceObservation, (
    Field("trigger", "y", Text(8), _R), Field("name", "n", Text(), _HOST),
    Field("benign", "g", Text(), _R), Field("address", "a", Addr(), _R),
    Field("port", "p", UInt(65535), _R),
    Field("attempts", "x", List(_TRACE_ATTEMPT, MAX_TRACE_ATTEMPTS), ()),
    Field("references", "e", List(_TRACE_REFERENCE, 4), ()),
    Field("max_ttl", "m", UInt(255), 0), Field("packets_sent", "s", UInt(65535), 0),
    Field("failure", "f", _FAILURE),
))  # fmt: skip
_SCHEMA = Struct(SiteMeasurement, (
    Field("id", "i", Uuid(), _R), Field("url", "u", Text(LONG), _R),
    Field("started_ms", "t", UInt(), Ctxt("id_ms")), Field("ms", "d", Ms(), _R),
    Field("agent", "a", _VANTAGE, _R), Field("control", "c", _VANTAGE),
    Field("control_failure", "f", _FAILURE), Field("online", "o", Bool()),
    Field("verdict", "r", _VERDICT, _R), Field("hops", "h", List(_HOP, MAX_HOPS), ()),
    Field("throttle", _THROTTLE_KEY, _THROTTLE),
    Field("protocols", _PROTOCOLS_KEY, _PROTOCOLS), Field("trace", _TRACE_KEY, _TRACE),
), context=_record_context, context_from=("id", "url"))  # fmt: skip


def _versioned_to_obj(schema: Struct, value: Any, name: str) -> dict[str, Any]:
    bins: dict[bytes, int] = {}
    texts: dict[str, int] = {}
    body = schema.enc(value, name, {"bins": bins, "texts": texts} if schema is _SCHEMA else {})
    tables = {**({"b": list(bins)} if bins else {}), **({"s": list(texts)} if texts else {})}
    return {"v": VERSION, **tables, **body}


def _versioned(schema: Struct, obj: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record without its version and bin table, and the context holding the table."""
    if not isinstance(obj, dict):
        raise WireError(f"{name}: expected a map")
    version = obj.get("v")
    if type(version) is not int or version not in VERSIONS:
        raise WireError(f"{name}.v: unsupported schema version {version!r} (expected 1 or 2)")
    if version == 1 and schema is _SCHEMA and (extra := _V2_KEYS & obj.keys()):
        raise WireError(f"{name}.{min(extra)}: needs schema version 2")
    rest = {k: v for k, v in obj.items() if k not in ("v", "b", "s")}
    ctx: dict[str, Any] = {}
    if "b" in obj:
        bins = obj["b"]
        if schema is not _SCHEMA or not isinstance(bins, list) or len(bins) > MAX_BINS:
            raise WireError(f"{name}.b: expected a bin table of at most {MAX_BINS} entries")
        for index, item in enumerate(bins):
            check_bin(item, f"{name}.b[{index}]", {}, (4, 16, 32), "bin")
        ctx["bins"] = bins
    if "s" in obj:
        texts = obj["s"]
        if schema is not _SCHEMA or not isinstance(texts, list) or len(texts) > MAX_TEXTS:
            raise WireError(f"{name}.s: expected a text table of at most {MAX_TEXTS} entries")
        ctx["texts"] = [Text().dec(item, f"{name}.s[{i}]", {}) for i, item in enumerate(texts)]
    return rest, ctx


def _versioned_from_obj(schema: Struct, obj: Any, name: str) -> Any:
    rest, ctx = _versioned(schema, obj, name)
    return schema.dec(rest, name, ctx)


def _pack(obj: dict[str, Any], name: str) -> bytes:
    try:
        data: bytes = msgpack.packb(obj, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise WireError(f"{name}: cannot encode: {exc}") from None
    if len(data) > MAX_RECORD:
        raise WireError(f"{name}: {len(data)} bytes exceeds the {MAX_RECORD}-byte record limit")
    return data


def _unpack(data: bytes, name: str) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"{name}: expected bytes")
    if len(data) > MAX_RECORD:
        raise WireError(f"{name}: {len(data)} bytes exceeds the {MAX_RECORD}-byte record limit")
    try:
        # The limits bound what a hostile record can make the unpacker allocate.
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            max_str_len=LONG * 4, max_bin_len=32, max_array_len=_MAX_ARRAY,
            max_map_len=32, max_ext_len=0,
        )  # fmt: skip
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"{name}: not valid msgpack: {exc}") from None


def measurement_to_obj(m: SiteMeasurement) -> dict[str, Any]:
    """The record as plain msgpack-able objects, for embedding in a batch as is."""
    return _versioned_to_obj(_SCHEMA, m, "measurement")


def measurement_from_obj(obj: Any) -> SiteMeasurement:
    result: SiteMeasurement = _versioned_from_obj(_SCHEMA, obj, "measurement")
    return result


def encode_measurement(m: SiteMeasurement) -> bytes:
    return _pack(measurement_to_obj(m), "measurement")


def decode_measurement(data: bytes) -> SiteMeasurement:
    return measurement_from_obj(_unpack(data, "measurement"))


def encode_vantage(v: Vantage) -> bytes:
    """A control's view alone: no target URL, so names are always written out."""
    return _pack(_versioned_to_obj(_VANTAGE, v, "vantage"), "vantage")


def decode_vantage(data: bytes) -> Vantage:
    result: Vantage = _versioned_from_obj(_VANTAGE, _unpack(data, "vantage"), "vantage")
    return result
