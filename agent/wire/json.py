"""Agent wire: a measurement rendered as JSON, for people and scripts rather than the collector.

``netsonde-agent probe --json`` prints one such object per target, and the collector's
``/api/v1/measurements`` serves stored records the same way, so both show the same fields.
The compact form that travels between them is ``agent.wire.record``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any

from agent.model.measurement import SiteMeasurement, Target

__all__ = ["measurement_json", "measurement_obj"]


def measurement_obj(target: Target, m: SiteMeasurement) -> dict[str, Any]:
    """The observations as plain data, with ``target``, ``verdict`` and ``evidence`` on top."""
    obj: dict[str, Any] = {
        "target": target.url,
        "verdict": m.verdict.verdict,
        "evidence": dict(m.verdict.evidence),
    }
    for key, value in asdict(m).items():
        if key != "verdict":
            obj[key] = value
    return obj


def measurement_json(target: Target, m: SiteMeasurement) -> str:
    return json.dumps(measurement_obj(target, m), default=_json_default, separators=(",", ":"))


def _json_default(value: object) -> object:
    # Observations are meant to hold only JSON types; this keeps a stray bytes or set field
    # from killing a long run halfway.
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
