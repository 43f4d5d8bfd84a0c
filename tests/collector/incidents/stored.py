"""Constructed measurements for the incident tests: the lab's recorded ones, given a domain,
a time and an agent, stored through the storage's own ingest on a chosen network."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from agent.model.measurement import SiteMeasurement, new_measurement_id
from collector.storage import Storage
from tests.collector.storage.records import ingest_records, recorded

HOUR = 3_600_000
# The start of a 6-hour window (1_700_006_400_000 is a multiple of 6 hours).
T0 = 1_700_006_400_000


def template(verdict: str) -> SiteMeasurement:
    return next(m for m in recorded() if m.verdict.verdict == verdict)


def measured(verdict: str, domain: str, at_ms: int) -> SiteMeasurement:
    m = template(verdict)
    scheme = m.url.split(":", 1)[0]
    return dataclasses.replace(
        m, id=new_measurement_id(at_ms), started_ms=at_ms, url=f"{scheme}://{domain}/"
    )


class Filler:
    """Stores measurements as agents on networks would upload them."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.agents: set[str] = set()

    def agent(self, agent_id: str) -> str:
        if agent_id not in self.agents:
            self.storage.add_agent(agent_id, agent_id, agent_id.encode().ljust(32, b"-"), 0)
            self.agents.add(agent_id)
        return agent_id

    def add(
        self,
        verdicts: str | Iterable[str],
        domain: str,
        at_ms: int,
        *,
        agent: str = "agent-a",
        asn: int | None = 64500,
        cc: str | None = "PK",
    ) -> None:
        """One measurement per verdict (a space-separated list), a minute apart from ``at_ms``."""
        names = verdicts.split() if isinstance(verdicts, str) else list(verdicts)
        ms = [measured(v, domain, at_ms + i * 60_000) for i, v in enumerate(names)]
        self.storage.ingest(self.agent(agent), ingest_records(ms), asn, cc, at_ms + HOUR)

    def checks(
        self, agent: str, states: str, at_ms: int, *, asn: int = 64500, step: int = 300_000
    ) -> None:
        """Connectivity checks, "+" online and "-" offline, every ``step`` from ``at_ms``."""
        pairs = [(at_ms + i * step, s == "+") for i, s in enumerate(states)]
        self.storage.ingest(self.agent(agent), [], asn, "PK", at_ms, checks=pairs)
