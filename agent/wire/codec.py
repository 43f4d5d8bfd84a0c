"""Agent layer 3, wire: the codec machinery behind ``agent.wire``'s schema.

Field codecs (text, integers, ms, addresses, hashes, enums, UUIDs, evidence, lists)
and ``Struct``, which maps a frozen dataclass to a msgpack map with short keys,
omitting defaults. Every decoder validates and raises only :class:`WireError`. The
schema itself, its code tables and the public API live in ``agent.wire``.
``agent.wire_check`` compiles the same tables to msgspec types for the collector.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Re-exported: the codec's callers catch it from here and from agent.wire.
from agent.model.rcodes import MAX_RCODE, rcode_number, rcode_text
from agent.wire.errors import WireError as WireError

MAX_BINS = 64
MAX_TEXTS = 64
SHORT = 256  # names, versions, header values
LONG = 4096  # URLs, Location, unknown_failure details
_INT64 = 1 << 63

Ctx = Mapping[str, Any]


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


class Codec:
    """Maps one field's value to its wire form and back; decode validates."""

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        return value

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        return obj


@dataclass(frozen=True)
class Text(Codec):
    limit: int = SHORT
    cut: bool = False  # titles only: they are evidence, not identity, and can be long
    # Texts the agent and the control (and a site's addresses) mostly share, such as a page's
    # title and server or a certificate's issuer: in a measurement, written once in its text
    # table and referred to by index elsewhere, as bins are.
    interned: bool = False

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        text = _text(value[: self.limit] if self.cut else value, path, self.limit)
        table: dict[str, int] | None = ctx.get("texts") if self.interned else None
        if table is None or (text not in table and len(table) >= MAX_TEXTS):
            return text
        return table.setdefault(text, len(table))

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if self.interned and isinstance(obj, int) and not isinstance(obj, bool):
            table: list[str] = ctx.get("texts", [])
            if not 0 <= obj < len(table):
                raise WireError(f"{path}: text table index {obj} out of range")
            obj = table[obj]
        return _text(obj, path, self.limit)


@dataclass(frozen=True)
class UInt(Codec):
    limit: int = _INT64 - 1

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        return _uint(value, path, self.limit)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        return _uint(obj, path, self.limit)


class Bool(Codec):
    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        return self.dec(value, path, ctx)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(obj, bool):
            raise WireError(f"{path}: expected a boolean")
        return obj


class Ms(Codec):
    """Durations are measured to 0.1 ms, but whole ms is all any verdict needs."""

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise WireError(f"{path}: expected a non-negative duration, got {value!r}")
        return _uint(round(value), path, 2**32 - 1)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        return float(_uint(obj, path, 2**32 - 1))


def _intern(packed: bytes, ctx: Ctx) -> bytes | int:
    """Within a measurement, a repeated bin (the same address or hash seen by agent and
    control, in DNS and at the endpoint) is written once and referred to by its index."""
    table: dict[bytes, int] | None = ctx.get("bins")
    if table is None or (packed not in table and len(table) >= MAX_BINS):
        return packed
    return table.setdefault(packed, len(table))


def check_bin(obj: Any, path: str, ctx: Ctx, sizes: tuple[int, ...], what: str) -> bytes:
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


class Addr(Codec):
    """Packed bytes; an address whose text packing would not reproduce stays text."""

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        _text(value, path, SHORT)
        try:
            packed = ipaddress.ip_address(value).packed
        except ValueError:
            return value  # a scoped IPv6 nameserver, say: kept rather than lost
        return _intern(packed, ctx) if str(ipaddress.ip_address(packed)) == value else value

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, SHORT)
        packed = check_bin(obj, path, ctx, (4, 16), "address")
        # inet_ntop is ipaddress's dotted quad at a tenth of the cost; IPv6 text has
        # compression rules worth leaving to ipaddress.
        return (
            socket.inet_ntop(socket.AF_INET, packed)
            if len(packed) == 4
            else str(ipaddress.IPv6Address(packed))
        )


class Sha256(Codec):
    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, str) or len(value) != 64 or value != value.lower():
            raise WireError(f"{path}: expected a lowercase hex SHA-256")
        try:
            return _intern(bytes.fromhex(value), ctx)
        except ValueError:
            raise WireError(f"{path}: expected a lowercase hex SHA-256") from None

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        return check_bin(obj, path, ctx, (32,), "SHA-256").hex()


class Enum(Codec):
    """A small int from an append-only table; text outside the table travels as is."""

    def __init__(self, table: Mapping[int, str], limit: int = LONG) -> None:
        self.table, self.limit = table, limit
        self.codes = {text: code for code, text in table.items()}

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        code = self.codes.get(value)
        return code if code is not None else _text(value, path, self.limit)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, self.limit)
        code = _uint(obj, path, _INT64 - 1)
        if code not in self.table:
            raise WireError(f"{path}: unknown code {code}")
        return self.table[code]


class Rcode(Codec):
    """An rcode as its number (``agent.model.rcodes``); a name that would not come back the
    same stays text."""

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        _text(value, path, SHORT)
        code = rcode_number(value)
        return value if code is None else code

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(obj, str):
            return _text(obj, path, SHORT)
        return rcode_text(_uint(obj, path, MAX_RCODE))


class Uuid(Codec):
    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        try:
            parsed = uuid.UUID(value)
        except (TypeError, ValueError, AttributeError):
            raise WireError(f"{path}: not a UUID") from None
        if str(parsed) != value:
            raise WireError(f"{path}: UUID not in canonical lowercase form")
        return parsed.bytes

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(obj, bytes) or len(obj) != 16:
            raise WireError(f"{path}: expected 16 bytes of UUID")
        return str(uuid.UUID(bytes=obj))


class Evidence(Codec):
    """Free-form but bounded, so a verdict cannot bloat a record."""

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        return self.dec(value, path, ctx)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
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
class List(Codec):
    item: Codec
    limit: int

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        items = enumerate(self._check(value, path))
        return [self.item.enc(v, f"{path}[{i}]", ctx) for i, v in items]

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        items = enumerate(self._check(obj, path))
        return tuple(self.item.dec(v, f"{path}[{i}]", ctx) for i, v in items)

    def _check(self, seq: Any, path: str) -> Any:
        if not isinstance(seq, list | tuple):
            raise WireError(f"{path}: expected an array")
        if len(seq) > self.limit:
            raise WireError(f"{path}: more than {self.limit} items")
        return seq


@dataclass(frozen=True)
class Ctxt:
    """A default taken from the enclosing record (the target host, the endpoint's address)."""

    name: str


REQUIRED = object()


@dataclass(frozen=True)
class Field:
    attr: str
    key: str
    codec: Codec
    default: Any = None  # REQUIRED, a Ctxt, or the value an absent key stands for


@dataclass(frozen=True)
class Struct(Codec):
    cls: type[Any]
    fields: tuple[Field, ...]
    # Context this record gives its children (``Ctxt`` defaults, the bin table), computed
    # from the fields named in ``context_from``. Those come first and are decoded with the
    # enclosing context; every other field sees ``{**ctx, **context(their values)}``.
    context: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    context_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        leading = tuple(fd.attr for fd in self.fields[: len(self.context_from)])
        if leading != self.context_from or (self.context is None) != (not self.context_from):
            raise TypeError(f"{self.cls.__name__}: context_from must name the leading fields")

    def default(self, field: Field, ctx: Ctx) -> Any:
        if isinstance(field.default, Ctxt):
            return ctx.get(field.default.name, REQUIRED)
        # A fresh dict each time: decoded records must not share a mutable default.
        return dict(field.default) if isinstance(field.default, dict) else field.default

    def inner(self, ctx: Ctx, attrs: dict[str, Any]) -> Ctx:
        return {**ctx, **self.context(attrs)} if self.context else ctx

    def enc(self, value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, self.cls):
            raise WireError(f"{path}: expected {self.cls.__name__}")
        attrs = {fd.attr: getattr(value, fd.attr) for fd in self.fields}
        inner = self.inner(ctx, attrs)
        out: dict[str, Any] = {}
        for index, fd in enumerate(self.fields):
            item = attrs[fd.attr]
            if item == self.default(fd, inner if index >= len(self.context_from) else ctx):
                continue
            if item is None:
                raise WireError(f"{path}.{fd.attr}: None is not allowed")
            out[fd.key] = fd.codec.enc(item, f"{path}.{fd.attr}", inner)
        return out

    def _keys_of(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise WireError(f"{path}: expected a map")
        if not obj.keys() <= self.keys:
            extra = set(obj) - self.keys
            raise WireError(f"{path}: unexpected key(s) {sorted(map(repr, extra))}")

    def _field(self, fd: Field, obj: dict[Any, Any], path: str, ctx: Ctx) -> Any:
        where = f"{path}.{fd.attr}"
        if fd.key in obj:
            return fd.codec.dec(obj[fd.key], where, ctx)
        if (default := self.default(fd, ctx)) is REQUIRED:
            raise WireError(f"{where}: missing (key {fd.key!r})")
        return default

    def decode_context(
        self, obj: dict[Any, Any], path: str, ctx: Ctx
    ) -> tuple[dict[str, Any], Ctx]:
        """The context fields' values, and the context the other fields see."""
        lead = self.fields[: len(self.context_from)]
        attrs = {fd.attr: self._field(fd, obj, path, ctx) for fd in lead}
        return attrs, self.inner(ctx, attrs)

    def dec(self, obj: Any, path: str, ctx: Ctx) -> Any:
        self._keys_of(obj, path)
        attrs, inner = self.decode_context(obj, path, ctx)
        for fd in self.fields[len(self.context_from) :]:
            attrs[fd.attr] = self._field(fd, obj, path, inner)
        return self.cls(**attrs)

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(fd.key for fd in self.fields)
