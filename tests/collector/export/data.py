"""Export test data: the lab's recorded measurements (every verdict the lab shows) stored by
two agents on two networks and one unknown network, some sharing a measured time to the
millisecond, so that pages split ties."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from agent.model.measurement import SiteMeasurement, new_measurement_id
from agent.wire.record import encode_measurement
from collector.storage import Storage
from collector.storage.queries import StoredMeasurement
from tests.collector.storage.records import AGENT, clones, ingest_records

AGENT_2 = "agent-2"
T0 = 1_700_000_000_000
RECEIVED = T0 + 3_600_000
# (agent, asn, cc, how many, first measured time)
UPLOADS = (
    (AGENT, 64500, "PK", 18, T0),
    (AGENT_2, 64501, "IR", 10, T0 + 4_500),
    (AGENT, None, None, 3, T0 + 9_000),
)
TIED_MS = T0 + 7_000  # four measurements at this very millisecond


def tied(n: int) -> list[SiteMeasurement]:
    base = clones(n, TIED_MS)
    return [
        dataclasses.replace(m, id=new_measurement_id(TIED_MS), started_ms=TIED_MS) for m in base
    ]


class Stored(NamedTuple):
    row: StoredMeasurement
    measurement: SiteMeasurement


def fill(storage: Storage) -> list[Stored]:
    """Stores the uploads (``storage`` has AGENT already); every row, in export order."""
    storage.add_agent(AGENT_2, "second agent", b"\x02" * 32, 0)
    out = []
    for index, (agent, asn, cc, n, start) in enumerate(UPLOADS):
        measurements = clones(n, start) + (tied(4) if index == 0 else [])
        storage.ingest(agent, ingest_records(measurements), asn, cc, RECEIVED + index)
        for m in measurements:
            row = StoredMeasurement(
                m.id,
                m.started_ms,
                RECEIVED + index,
                agent,
                asn,
                cc,
                m.verdict.verdict,
                encode_measurement(m),
            )
            out.append(Stored(row, m))
    return sorted(out, key=lambda s: (s.row.measured_ms, bytes.fromhex(s.row.id.replace("-", ""))))
