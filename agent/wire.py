"""Agent layer 3, wire: msgpack schema v1, the one format measurements travel and rest in.

A record is a msgpack map ``{"v": 1, ...}`` with one-character keys. Durations and
timestamps are integer milliseconds, IP addresses 4/16-byte bin, SHA-256 hashes 32-byte
bin, the id its 16 UUID bytes. Failures, TLS versions, ciphers, ALPN and content types are
small integers from append-only tables (a value missing from its table travels as its
text, so those fields are ``int | str``); rcodes are dnspython's numbers. Within a
measurement each distinct address or hash is stored once in the top-level ``b`` array and
referred to by index, since agent and control mostly see the same ones. A key is absent
when its field holds the default: None, empty, False, 0, or what the record implies (the
URL's host and port, the endpoint's address, the UUIDv7's time, port 53, qtype A, path /).
docs/wire-format.md has the field-by-field table; keep it in step with the specs below.

Round trip is exact except that float ms are rounded to integers (ties to even) and
titles are cut to 128 characters. Decoding validates everything and raises only
:class:`WireError`, whatever the bytes: records come from the network."""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dns.rcode
import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed

from agent.measurement import SiteMeasurement, Vantage, Verdict
from agent.net import failures as f
from agent.net.dns import DNSExchange, DNSReply, SystemResolution
from agent.net.http import HTTPRoundTrip
from agent.net.tcp import TCPConnect
from agent.net.tls import TLSHandshake
from agent.probes.dns import DNSObservation
from agent.probes.endpoint import EndpointObservation

__all__ = [
    "FAILURE_CODES",
    "VERSION",
    "WireError",
    "decode_measurement",
    "decode_vantage",
    "encode_measurement",
    "encode_vantage",
    "measurement_from_obj",
    "measurement_to_obj",
]

VERSION = 1
MAX_RECORD = 64 * 1024
MAX_TITLE = 128
MAX_BINS = 64
_SHORT = 256  # names, versions, header values
_LONG = 4096  # URLs, Location, unknown_failure details
_INT64 = 1 << 63

# Append-only: a code keeps its meaning forever, since stored records are reclassified
# years later. Never reuse or renumber; add new entries at the end.
FAILURE_CODES: Mapping[int, str] = {
    1: f.CONNECTION_REFUSED,
    2: f.CONNECTION_RESET,
    3: f.CONNECTION_ABORTED,
    4: f.GENERIC_TIMEOUT,
    5: f.EOF,
    6: f.HOST_UNREACHABLE,
    7: f.NETWORK_UNREACHABLE,
    8: f.DNS_NXDOMAIN,
    9: f.DNS_SERVFAIL,
    10: f.DNS_REFUSED,
    11: f.DNS_NO_ANSWER,
    12: f.SSL_UNKNOWN_AUTHORITY,
    13: f.SSL_INVALID_HOSTNAME,
    14: f.SSL_INVALID_CERTIFICATE,
    15: f.SSL_FAILED_HANDSHAKE,
    16: "no_control",  # agent.site's control_failure; a literal so wire needs no I/O module
}
TLS_VERSION_CODES: Mapping[int, str] = {1: "TLSv1", 2: "TLSv1.1", 3: "TLSv1.2", 4: "TLSv1.3"}
CIPHER_CODES: Mapping[int, str] = {
    1: "TLS_AES_256_GCM_SHA384",
    2: "TLS_AES_128_GCM_SHA256",
    3: "TLS_CHACHA20_POLY1305_SHA256",
    4: "ECDHE-ECDSA-AES256-GCM-SHA384",
    5: "ECDHE-RSA-AES256-GCM-SHA384",
    6: "ECDHE-ECDSA-AES128-GCM-SHA256",
    7: "ECDHE-RSA-AES128-GCM-SHA256",
    8: "ECDHE-ECDSA-CHACHA20-POLY1305",
    9: "ECDHE-RSA-CHACHA20-POLY1305",
}
ALPN_CODES: Mapping[int, str] = {1: "http/1.1", 2: "h2"}
CONTENT_TYPE_CODES: Mapping[int, str] = {
    1: "text/html",
    2: "text/html; charset=utf-8",
    3: "text/html; charset=UTF-8",
    4: "text/plain",
    5: "text/plain; charset=utf-8",
    6: "application/json",
    7: "text/html;charset=utf-8",
    8: "text/html; charset=iso-8859-1",
}

_Ctx = Mapping[str, Any]


class WireError(ValueError):
    """A record that is not valid schema v1; the message names the offending field."""


def _text(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str):
        raise WireError(f"{path}: expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise WireError(f"{path}: longer than {limit} characters")
    return value


def _uint(value: Any, path: str, limit: int) -> int:
    # bool is an int subclass, and msgpack keeps true/false apart from integers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{path}: expected an integer, got {type(value).__name__}")
    if not 0 <= value <= limit:
        raise WireError(f"{path}: {value} outside 0..{limit}")
    return value


class _Codec:
    """Maps one field's value to its wire form and back; decode validates."""

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        return value

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        return obj


@dataclass(frozen=True)
class _Text(_Codec):
    limit: int = _SHORT
    cut: bool = False  # titles only: they are evidence, not identity, and can be long

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        return _text(value[: self.limit] if self.cut else value, path, self.limit)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        return _text(obj, path, self.limit)


@dataclass(frozen=True)
class _UInt(_Codec):
    limit: int = _INT64 - 1

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        return _uint(value, path, self.limit)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        return _uint(obj, path, self.limit)


class _Bool(_Codec):
    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        return self.dec(value, path, ctx)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(obj, bool):
            raise WireError(f"{path}: expected a boolean")
        return obj


class _Ms(_Codec):
    """Durations are measured to 0.1 ms, but whole ms is all any verdict needs."""

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise WireError(f"{path}: expected a non-negative duration, got {value!r}")
        return _uint(round(value), path, 2**32 - 1)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        return float(_uint(obj, path, 2**32 - 1))


def _intern(packed: bytes, ctx: _Ctx) -> bytes | int:
    """Within a measurement, a repeated bin (the same address or hash seen by agent and
    control, in DNS and at the endpoint) is written once and referred to by its index."""
    table: dict[bytes, int] | None = ctx.get("bins")
    if table is None or (packed not in table and len(table) >= MAX_BINS):
        return packed
    return table.setdefault(packed, len(table))


def _bin(obj: Any, path: str, ctx: _Ctx, sizes: tuple[int, ...], what: str) -> bytes:
    if isinstance(obj, int) and not isinstance(obj, bool):
        table: list[bytes] = ctx.get("bins", [])
        if not 0 <= obj < len(table):
            raise WireError(f"{path}: bin table index {obj} out of range")
        obj = table[obj]
    if not isinstance(obj, bytes):
        raise WireError(f"{path}: expected {what}, got {type(obj).__name__}")
    if len(obj) not in sizes:
        raise WireError(
            f"{path}: {what} of {len(obj)} bytes, expected {' or '.join(map(str, sizes))}"
        )
    return obj


class _Addr(_Codec):
    """Packed bytes; an address whose text packing would not reproduce stays text."""

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        _text(value, path, _SHORT)
        try:
            packed = ipaddress.ip_address(value).packed
        except ValueError:
            return value  # a scoped IPv6 nameserver, say: kept rather than lost
        return _intern(packed, ctx) if str(ipaddress.ip_address(packed)) == value else value

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, _SHORT)
        return str(ipaddress.ip_address(_bin(obj, path, ctx, (4, 16), "address")))


class _Sha256(_Codec):
    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(value, str) or len(value) != 64 or value != value.lower():
            raise WireError(f"{path}: expected a lowercase hex SHA-256")
        try:
            return _intern(bytes.fromhex(value), ctx)
        except ValueError:
            raise WireError(f"{path}: expected a lowercase hex SHA-256") from None

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        return _bin(obj, path, ctx, (32,), "SHA-256").hex()


class _Enum(_Codec):
    """A small int from an append-only table; text outside the table travels as is."""

    def __init__(self, table: Mapping[int, str], limit: int = _LONG) -> None:
        self.table, self.limit = table, limit
        self.codes = {text: code for code, text in table.items()}

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        code = self.codes.get(value)
        return code if code is not None else _text(value, path, self.limit)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, self.limit)
        code = _uint(obj, path, _INT64 - 1)
        if code not in self.table:
            raise WireError(f"{path}: unknown code {code}")
        return self.table[code]


class _Rcode(_Codec):
    """dnspython's rcode numbers; a name that would not come back the same stays text."""

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        _text(value, path, _SHORT)
        try:
            code = dns.rcode.from_text(value)
        except (dns.rcode.UnknownRcode, ValueError):
            return value
        return int(code) if dns.rcode.to_text(code) == value else value

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, _SHORT)
        return dns.rcode.to_text(dns.rcode.Rcode.make(_uint(obj, path, 4095)))


class _Uuid(_Codec):
    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        try:
            parsed = uuid.UUID(value)
        except (TypeError, ValueError, AttributeError):
            raise WireError(f"{path}: not a UUID") from None
        if str(parsed) != value:
            raise WireError(f"{path}: UUID not in canonical lowercase form")
        return parsed.bytes

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(obj, bytes) or len(obj) != 16:
            raise WireError(f"{path}: expected 16 bytes of UUID")
        return str(uuid.UUID(bytes=obj))


class _Evidence(_Codec):
    """Free-form but bounded, so a verdict cannot bloat a record."""

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        return self.dec(value, path, ctx)

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(obj, dict) or len(obj) > 16:
            raise WireError(f"{path}: expected a map of at most 16 entries")
        for key, item in obj.items():
            _text(key, f"{path} key", 64)
            where = f"{path}.{key}"
            if isinstance(item, str):
                _text(item, where, 256)
            elif isinstance(item, int) and not isinstance(item, bool):
                if not -_INT64 <= item < _INT64:
                    raise WireError(f"{where}: integer out of 64-bit range")
            elif not isinstance(item, float | bool):
                raise WireError(f"{where}: expected str, int, float or bool")
        return dict(obj)


@dataclass(frozen=True)
class _List(_Codec):
    item: _Codec
    limit: int

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        items = enumerate(self._check(value, path))
        return [self.item.enc(v, f"{path}[{i}]", ctx) for i, v in items]

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        items = enumerate(self._check(obj, path))
        return tuple(self.item.dec(v, f"{path}[{i}]", ctx) for i, v in items)

    def _check(self, seq: Any, path: str) -> Any:
        if not isinstance(seq, list | tuple):
            raise WireError(f"{path}: expected an array")
        if len(seq) > self.limit:
            raise WireError(f"{path}: more than {self.limit} items")
        return seq


@dataclass(frozen=True)
class _Ctxt:
    """A default taken from the enclosing record (the target host, the endpoint's address)."""

    name: str


_REQUIRED = object()


@dataclass(frozen=True)
class _F:
    attr: str
    key: str
    codec: _Codec
    default: Any = None  # _REQUIRED, a _Ctxt, or the value an absent key stands for


@dataclass(frozen=True)
class _Struct(_Codec):
    cls: type[Any]
    fields: tuple[_F, ...]
    # Context this record gives its children, from its own (earlier-declared) fields.
    context: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def _default(self, field: _F, ctx: _Ctx) -> Any:
        if isinstance(field.default, _Ctxt):
            return ctx.get(field.default.name, _REQUIRED)
        # A fresh dict each time: decoded records must not share a mutable default.
        return dict(field.default) if isinstance(field.default, dict) else field.default

    def _inner(self, ctx: _Ctx, attrs: dict[str, Any]) -> _Ctx:
        return {**ctx, **self.context(attrs)} if self.context else ctx

    def enc(self, value: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(value, self.cls):
            raise WireError(f"{path}: expected {self.cls.__name__}")
        attrs = {fd.attr: getattr(value, fd.attr) for fd in self.fields}
        inner = self._inner(ctx, attrs)
        out: dict[str, Any] = {}
        for fd in self.fields:
            item = attrs[fd.attr]
            if item == self._default(fd, inner):
                continue
            if item is None:
                raise WireError(f"{path}.{fd.attr}: None is not allowed")
            out[fd.key] = fd.codec.enc(item, f"{path}.{fd.attr}", inner)
        return out

    def dec(self, obj: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(obj, dict):
            raise WireError(f"{path}: expected a map")
        extra = set(obj) - {fd.key for fd in self.fields}
        if extra:
            raise WireError(f"{path}: unexpected key(s) {sorted(map(repr, extra))}")
        attrs: dict[str, Any] = {}
        for fd in self.fields:
            where = f"{path}.{fd.attr}"
            inner = self._inner(ctx, attrs)
            if fd.key in obj:
                attrs[fd.attr] = fd.codec.dec(obj[fd.key], where, inner)
            elif (default := self._default(fd, inner)) is _REQUIRED:
                raise WireError(f"{where}: missing (key {fd.key!r})")
            else:
                attrs[fd.attr] = default
        return self.cls(**attrs)


def _record_context(attrs: dict[str, Any]) -> dict[str, Any]:
    """Names default to the URL's host, endpoint ports to its port, started_ms to the time
    inside the UUIDv7 id: each is then written only where it differs."""
    context: dict[str, Any] = {}
    url, ident = attrs.get("url"), attrs.get("id")
    try:
        if isinstance(ident, str):
            context["id_ms"] = uuid.UUID(ident).int >> 80
        if isinstance(url, str):
            parts = urlsplit(url)
            context["host"] = (parts.hostname or "").rstrip(".")
            context["target_port"] = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        pass  # a malformed url implies nothing; every field is then written out
    return {k: v for k, v in context.items() if v}


_FAILURE = _Enum(FAILURE_CODES)
_HOST = _Ctxt("host")
_R = _REQUIRED

_TCP = _Struct(TCPConnect, (
    _F("ip", "a", _Addr(), _Ctxt("ip")), _F("port", "p", _UInt(65535), _Ctxt("port")),
    _F("ms", "d", _Ms(), _R), _F("failure", "f", _FAILURE),
))  # fmt: skip
_TLS = _Struct(TLSHandshake, (
    _F("sni", "n", _Text(), _HOST), _F("version", "v", _Enum(TLS_VERSION_CODES, _SHORT)),
    _F("cipher", "c", _Enum(CIPHER_CODES, _SHORT)), _F("alpn", "p", _Enum(ALPN_CODES, _SHORT)),
    _F("leaf_sha256", "l", _Sha256()), _F("chain_sha256", "h", _Sha256()),
    _F("chain_length", "k", _UInt(65535), 0), _F("issuer", "i", _Text()),
    _F("validated", "o", _Bool(), False), _F("validation_failure", "x", _FAILURE),
    _F("ms", "d", _Ms(), _R), _F("failure", "f", _FAILURE),
))  # fmt: skip
_HTTP = _Struct(HTTPRoundTrip, (
    _F("host", "n", _Text(), _HOST), _F("path", "u", _Text(_LONG), "/"),
    _F("status", "s", _UInt()), _F("server", "v", _Text()), _F("location", "l", _Text(_LONG)),
    _F("content_type", "c", _Enum(CONTENT_TYPE_CODES, _SHORT)),
    _F("content_length", "z", _UInt()), _F("set_cookie_count", "k", _UInt(), 0),
    _F("body_length", "b", _UInt(), 0), _F("body_truncated", "t", _Bool(), False),
    _F("body_sha256", "h", _Sha256()), _F("title", "i", _Text(MAX_TITLE, cut=True)),
    _F("ms", "d", _Ms(), _R), _F("failure", "f", _FAILURE), _F("fingerprint", "p", _Text()),
))  # fmt: skip
_ENDPOINT = _Struct(EndpointObservation, (
    _F("ip", "a", _Addr(), _R), _F("port", "p", _UInt(65535), _Ctxt("target_port")),
    _F("tcp", "t", _TCP, _R), _F("tls", "s", _TLS), _F("tls_benign", "S", _TLS),
    _F("http", "h", _HTTP), _F("http_benign", "H", _HTTP),
), context=lambda a: {"ip": a.get("ip"), "port": a.get("port")})  # fmt: skip
_REPLY = _Struct(DNSReply, (
    _F("source", "s", _Addr(), _R), _F("port", "p", _UInt(65535), 53), _F("ms", "d", _Ms(), _R),
    _F("rcode", "r", _Rcode(), "NOERROR"), _F("addresses", "a", _List(_Addr(), 64), ()),
    _F("answer_ttl", "l", _UInt(2**32 - 1)), _F("ip_ttl", "h", _UInt(255)),
))  # fmt: skip
_EXCHANGE = _Struct(DNSExchange, (
    _F("server", "s", _Addr(), _R), _F("port", "p", _UInt(65535), 53),
    _F("name", "n", _Text(), _HOST), _F("qtype", "y", _Text(16), "A"),
    _F("replies", "r", _List(_REPLY, 64), ()), _F("ms", "d", _Ms(), _R),
    _F("failure", "f", _FAILURE),
))  # fmt: skip
_SYSTEM = _Struct(SystemResolution, (
    _F("name", "n", _Text(), _HOST), _F("qtype", "y", _Text(16), "A"),
    _F("nameservers", "m", _List(_Addr(), 16), ()), _F("server", "s", _Addr()),
    _F("rcode", "r", _Rcode()), _F("addresses", "a", _List(_Addr(), 64), ()),
    _F("answer_ttl", "l", _UInt(2**32 - 1)), _F("ms", "d", _Ms(), _R),
    _F("failure", "f", _FAILURE),
))  # fmt: skip
_DNS = _Struct(DNSObservation, (
    _F("system", "s", _SYSTEM, _R), _F("public", "q", _List(_EXCHANGE, 16), ()),
))  # fmt: skip
_VANTAGE = _Struct(Vantage, (
    _F("dns", "n", _DNS, _R), _F("endpoints", "e", _List(_ENDPOINT, 16), ()),
))  # fmt: skip
_VERDICT = _Struct(Verdict, (
    _F("verdict", "v", _Text(64), _R), _F("evidence", "e", _Evidence(), {}),
))  # fmt: skip
_SCHEMA = _Struct(SiteMeasurement, (
    _F("id", "i", _Uuid(), _R), _F("url", "u", _Text(_LONG), _R),
    _F("started_ms", "t", _UInt(), _Ctxt("id_ms")), _F("ms", "d", _Ms(), _R),
    _F("agent", "a", _VANTAGE, _R), _F("control", "c", _VANTAGE),
    _F("control_failure", "f", _FAILURE), _F("online", "o", _Bool()),
    _F("verdict", "r", _VERDICT, _R),
), context=_record_context)  # fmt: skip


def _versioned_to_obj(schema: _Struct, value: Any, name: str) -> dict[str, Any]:
    bins: dict[bytes, int] = {}
    body = schema.enc(value, name, {"bins": bins} if schema is _SCHEMA else {})
    return {"v": VERSION, **({"b": list(bins)} if bins else {}), **body}


def _versioned_from_obj(schema: _Struct, obj: Any, name: str) -> Any:
    if not isinstance(obj, dict):
        raise WireError(f"{name}: expected a map")
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise WireError(f"{name}.v: unsupported schema version {version!r} (expected {VERSION})")
    rest = {k: v for k, v in obj.items() if k not in ("v", "b")}
    if "b" not in obj:
        return schema.dec(rest, name, {})
    bins = obj["b"]
    if schema is not _SCHEMA or not isinstance(bins, list) or len(bins) > MAX_BINS:
        raise WireError(f"{name}.b: expected a bin table of at most {MAX_BINS} entries")
    for index, item in enumerate(bins):
        _bin(item, f"{name}.b[{index}]", {}, (4, 16, 32), "bin")
    return schema.dec(rest, name, {"bins": bins})


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
            max_str_len=_LONG * 4, max_bin_len=32, max_array_len=64,
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
