"""Collector ingest: the wire schema compiled to msgspec types, for the collector's ingest.

The collector must validate every record it ingests, tens of thousands a second, and has
no use for the decoded objects: it stores the bytes it received and indexes a few columns.
Decoding through ``agent.wire.codec`` costs ~400 us a record in Python; msgspec validates
the same msgpack in C in a few. :class:`RecordCheck` derives msgspec ``Struct`` types
from ``agent.wire.record``'s own field tables (``defstruct``), so the schema is still written
once (docs/design/004-ingest.md).

What msgspec cannot say is checked around it: addresses and hashes go through a
``dec_hook`` (text, inline bin, or an index into the record's bin table, resolved after
the decode), as do interned texts (inline, or an index into its text table, whose entry
must fit the field), and the defaults a record implies (``Ctxt``) must be present in its
context.
The result only has to be *sound*: a record :class:`RecordCheck` accepts is one
``Struct.dec`` accepts. Anything it refuses goes to ``dec`` for the verdict and the
message, so messages come from one place and a stricter check here costs only speed.
tests/collector/ingest/test_check.py holds the two to that on mutated records.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec

from agent.wire.codec import (
    MAX_BINS,
    MAX_TEXTS,
    REQUIRED,
    SHORT,
    Addr,
    Bool,
    Codec,
    Ctxt,
    Enum,
    Evidence,
    List,
    Ms,
    Rcode,
    Sha256,
    Struct,
    Text,
    UInt,
    Uuid,
)

__all__ = ["RecordCheck", "build_once"]

_INT64 = 1 << 63
_ABSENT: Any = None  # msgspec does not type-check defaults; an explicit nil is still refused


class _AddressRef:
    """Stands for an address in the compiled types; the hook checks the value."""


class _HashRef:
    """Stands for a SHA-256 in the compiled types; the hook checks the value."""


class _TextRef:
    """Stands for an interned text in the compiled types; a subclass per length limit."""

    limit = SHORT


# Each limit's subclass, and the one instance of it the hook hands msgspec back.
_TEXT_REFS: dict[int, type[_TextRef]] = {}
_TEXTS: dict[type, _TextRef] = {}


def _text_ref(limit: int) -> type[_TextRef]:
    if limit not in _TEXT_REFS:
        kind = type(f"_TextRef{limit}", (_TextRef,), {"limit": limit})
        _TEXT_REFS[limit], _TEXTS[kind] = kind, kind()
    return _TEXT_REFS[limit]


_ADDRESS, _HASH = _AddressRef(), _HashRef()
_BIN_SIZES = frozenset((4, 16, 32))  # of bin-table entries: addresses and hashes


# Types built at run time, from the schema: typed Any, as no checker can follow them.
_UNION: Any = Union
_LITERAL: Any = Literal
_LIST: Any = list
_DICT: Any = dict
_REQUIRED: Any = msgspec.NODEFAULT


def _meta(kind: Any, **constraints: Any) -> Any:
    return _ANNOTATED[kind, msgspec.Meta(**constraints)]


_ANNOTATED: Any = Annotated


class _Compiler:
    """One msgspec type per codec, named after the dataclass a Struct maps."""

    def __init__(self) -> None:
        self.types: dict[int, Any] = {}
        self.needed: set[str] = set()  # Ctxt names a record must supply
        self.provided: set[str] = set()  # ... and those a struct inside it always does

    def type_of(self, codec: Codec) -> Any:
        if isinstance(codec, Text):
            return _text_ref(codec.limit) if codec.interned else _meta(str, max_length=codec.limit)
        if isinstance(codec, UInt):
            return _meta(int, ge=0, le=codec.limit)
        if isinstance(codec, Ms):
            return _meta(int, ge=0, le=2**32 - 1)
        if isinstance(codec, Bool):
            return bool
        if isinstance(codec, Uuid):
            return _meta(bytes, min_length=16, max_length=16)
        if isinstance(codec, Enum):
            return _UNION[_meta(str, max_length=codec.limit), _LITERAL[tuple(codec.table)]]
        if isinstance(codec, Rcode):
            return _UNION[_meta(str, max_length=SHORT), _meta(int, ge=0, le=4095)]
        if isinstance(codec, Addr):
            return _AddressRef
        if isinstance(codec, Sha256):
            return _HashRef
        if isinstance(codec, Evidence):
            value = _UNION[
                _meta(str, max_length=256), _meta(int, ge=-_INT64, le=_INT64 - 1), float, bool
            ]
            return _meta(_DICT[_meta(str, max_length=64), value], max_length=16)
        if isinstance(codec, List):
            return _meta(_LIST[self.type_of(codec.item)], max_length=codec.limit)
        if isinstance(codec, Struct):
            return self.struct(codec)
        raise TypeError(f"no msgspec type for {type(codec).__name__}")

    def struct(self, struct: Struct, extra: tuple[tuple[str, Any, Any], ...] = ()) -> Any:
        if not extra and id(struct) in self.types:
            return self.types[id(struct)]
        if struct.context is not None:
            # Keys a context gives whatever the values are (an endpoint's ip and port),
            # as opposed to those it gives only when the record implies them (the host).
            self.provided |= set(struct.context({}))
        fields: list[tuple[str, Any, Any]] = list(extra)
        for fd in struct.fields:
            if isinstance(fd.default, Ctxt):
                self.needed.add(fd.default.name)
            default = _REQUIRED if fd.default is REQUIRED else _ABSENT
            fields.append((fd.key, self.type_of(fd.codec), default))
        compiled = msgspec.defstruct(
            struct.cls.__name__, fields, kw_only=True, forbid_unknown_fields=True, gc=False
        )
        self.types[id(struct)] = compiled
        return compiled


# msgspec builds a type's decoding information when a decoder is made. Making decoders in
# worker threads while other threads decoded crashed the collector (SIGSEGV under concurrent
# uploads, inside msgspec's annotation handling). So each decoder is built once, under one
# lock, and the collector builds them at start (collector.ingest.verify.prepare_verifier).
_BUILD_LOCK = threading.Lock()
_BUILT: dict[str, Any] = {}
T = TypeVar("T")


def build_once(name: str, factory: Callable[[], T]) -> T:
    """``factory()``, called once whichever thread asks first, under the build lock."""
    try:
        return _BUILT[name]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _BUILD_LOCK:
        if name not in _BUILT:
            _BUILT[name] = factory()
        return _BUILT[name]  # type: ignore[no-any-return]


class _Decoding:
    """One decoder and the bin-table indexes its hook collects while decoding one record,
    checked once the table is known. Used by one thread at a time (RecordCheck's pool): the
    hook then appends to plain lists, where per-thread state would cost a lookup per call,
    and a record has ~20 references."""

    def __init__(
        self,
        kind: Any,
        needed: frozenset[str],
        implied: Callable[[Any], AbstractSet[str]],
        consistent: Callable[[Any], bool],
    ) -> None:
        self.needed, self.implied, self.consistent = needed, implied, consistent
        self.addresses: list[int] = []
        self.hashes: list[int] = []
        self.texts: list[tuple[int, int]] = []  # (index, the field's length limit)
        self.layouts: dict[tuple[bytes, tuple[int, ...], tuple[int, ...]], bool] = {}
        add_address, add_hash, add_text = (
            self.addresses.append,
            self.hashes.append,
            self.texts.append,
        )

        def hook(kind: type, obj: Any) -> Any:
            if kind is _AddressRef:
                if type(obj) is int:
                    add_address(obj)
                elif type(obj) is bytes:
                    if len(obj) not in (4, 16):
                        raise ValueError("an address is 4 or 16 bytes")
                elif type(obj) is not str or len(obj) > SHORT:
                    raise TypeError("not an address")
                return _ADDRESS
            if kind is _HashRef:
                if type(obj) is int:
                    add_hash(obj)
                elif type(obj) is not bytes or len(obj) != 32:
                    raise TypeError("not a SHA-256")
                return _HASH
            text = _TEXTS.get(kind)
            if text is not None:
                if type(obj) is int:
                    add_text((obj, text.limit))
                elif type(obj) is not str or len(obj) > text.limit:
                    raise TypeError("not a text")
                return text
            raise TypeError(f"unexpected {kind.__name__}")

        self.decode = msgspec.msgpack.Decoder(kind, dec_hook=hook).decode

    def check(self, data: bytes | memoryview) -> Any:
        """The record's structs, or None (:meth:`RecordCheck.__call__`)."""
        addresses, hashes, texts = self.addresses, self.hashes, self.texts
        addresses.clear()
        hashes.clear()
        texts.clear()
        try:
            record = self.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        bins = record.b
        # Whether the references fit the bin table depends only on the table's entry sizes
        # and the indexes, and a stream of records repeats a few layouts of them: a lookup
        # costs a third of working it out again for every record.
        layout = (bytes(map(len, bins)) if bins else b"", tuple(addresses), tuple(hashes))
        valid = self.layouts.get(layout)
        if valid is None:
            valid = _references_fit(*layout)
            if len(self.layouts) >= _LAYOUTS:
                self.layouts.clear()
            self.layouts[layout] = valid
        if not valid or (texts and not _texts_fit(record.s or (), texts)):
            return None
        if self.needed and not self.needed <= self.implied(record):
            return None
        return record if self.consistent(record) else None


# Reference layouts a decoder remembers, bounded for a sender that makes every one new.
_LAYOUTS = 4096


def _references_fit(sizes: bytes, addresses: tuple[int, ...], hashes: tuple[int, ...]) -> bool:
    """Whether each index refers to an entry of its kind in a bin table of entries of
    ``sizes`` bytes (msgspec bounded them to 4-32): 32 for a hash, 4 or 16 for an address."""
    if not _BIN_SIZES.issuperset(sizes):
        return False
    hash_at = {index for index, size in enumerate(sizes) if size == 32}
    return hash_at.issuperset(hashes) and all(
        0 <= index < len(sizes) and index not in hash_at for index in addresses
    )


def _texts_fit(table: Sequence[str], references: list[tuple[int, int]]) -> bool:
    """Whether each index refers to an entry of the text table that fits its field."""
    return all(
        0 <= index < len(table) and len(table[index]) <= limit for index, limit in references
    )


# Decoders per RecordCheck: one for each thread checking at once. Checks hold the GIL, so
# more threads than this only wait their turn for a decoder instead of for the GIL.
DECODERS = 8


class RecordCheck:
    """Validates encoded records of one schema; thread-safe. Its decoders are built when
    the check is (msgspec builds type information then), never later in a worker thread."""

    def __init__(
        self,
        schema: Struct,
        versions: AbstractSet[int],
        implied: Callable[[Any], AbstractSet[str]],
        consistent: Callable[[Any], bool] = lambda record: True,
    ) -> None:
        """``implied(record)`` names the context a decoded record supplies (the URL's host
        and port, the id's time): what ``Ctxt`` defaults may stand for. ``consistent(record)``
        is whatever else the decoder requires across fields (a field of a later version)."""
        compiler = _Compiler()
        bins = _meta(_LIST[_meta(bytes, min_length=4, max_length=32)], max_length=MAX_BINS)
        version = _LITERAL[tuple(sorted(versions))]
        texts = _meta(_LIST[_meta(str, max_length=SHORT)], max_length=MAX_TEXTS)
        tables = (("b", bins, _ABSENT), ("s", texts, _ABSENT))
        kind = compiler.struct(schema, (("v", version, _REQUIRED), *tables))
        needed = frozenset(compiler.needed - compiler.provided)
        self._pool: queue.SimpleQueue[_Decoding] = queue.SimpleQueue()
        for _ in range(DECODERS):
            self._pool.put(_Decoding(kind, needed, implied, consistent))

    def __call__(self, data: bytes | memoryview) -> Any:
        """The record as msgspec structs (attributes named by the wire keys) if it is
        valid; None if this check cannot tell, and then ``Struct.dec`` must."""
        with self.checking() as check:
            return check(data)

    @contextmanager
    def checking(self) -> Iterator[Callable[[bytes | memoryview], Any]]:
        """:meth:`__call__` for many records in a row, on a decoder taken once for them all.
        Each record's structs should be let go before the next is checked: a batch's worth
        kept alive at once costs the garbage collector more than the check itself."""
        decoding = self._pool.get()
        try:
            yield decoding.check
        finally:
            self._pool.put(decoding)
