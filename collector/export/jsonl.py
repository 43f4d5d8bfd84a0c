"""Collector export: one stored measurement as a JSON line, as ``/api/v1/measurements``
shows it.

The same object as ``collector.web.queries.measurement_view`` (a test holds the two
together), built without its round trip through a JSON string: an export renders every
row of a period, and ``dataclasses.asdict`` and that round trip cost more than decoding
the record. The public line has the network, never the agent; the operator's also has
the agent id and the time the collector received it. A trace's routers and the AS of
``after_hop`` as ``collector.traces.shown`` shows them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agent.model.measurement import Target, TargetError
from agent.wire.record import WireError, decode_measurement
from collector.storage.queries import StoredMeasurement
from collector.traces import Lookup, shown

__all__ = ["jsonl_line", "plain"]

_SCALARS = frozenset((str, int, float, bool, type(None)))
_FIELDS: dict[type, tuple[str, ...]] = {}
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def plain(value: Any) -> Any:
    """``value`` (dataclasses, tuples, dicts, scalars) as JSON's types, as
    ``dataclasses.asdict`` and ``json`` together would make it."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is tuple or kind is list:
        return [plain(item) for item in value]
    if kind is dict:
        return {key: plain(item) for key, item in value.items()}
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    return {name: plain(getattr(value, name)) for name in names}


def measurement_row(
    row: StoredMeasurement, *, operator: bool, lookup: Lookup | None = None
) -> dict[str, Any]:
    obj: dict[str, Any]
    try:
        m = decode_measurement(row.record)
        fields = plain(m)
        verdict = fields.pop("verdict")
        obj = {
            "target": Target.parse(m.url).url,
            "verdict": verdict["verdict"],
            "evidence": verdict["evidence"],
            **fields,
        }
    except (WireError, TargetError) as exc:
        # Still listed, so the export has every row; the stored verdict stands in.
        obj = {"id": row.id, "verdict": row.verdict, "decode_error": str(exc)}
    # The stored verdict wins: reclassification rewrites the column, not the record.
    obj["verdict"] = row.verdict
    obj = shown(obj, operator=operator, lookup=lookup)
    obj["asn"], obj["cc"] = row.asn, row.cc
    if operator:
        obj["agent_id"], obj["received_ms"] = row.agent_id, row.received_ms
    return obj


def jsonl_line(row: StoredMeasurement, *, operator: bool, lookup: Lookup | None = None) -> bytes:
    return (_ENCODE(measurement_row(row, operator=operator, lookup=lookup)) + "\n").encode()
