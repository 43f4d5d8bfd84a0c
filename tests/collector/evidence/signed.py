"""Evidence test helpers: a store holding real signed batches, ingested as the collector
ingests them (``collector.ingest.accept.store_signed_batch``), and bundles built from it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.model.measurement import SiteMeasurement
from agent.wire.batch import encode_batch
from agent.wire.keys import public_key_bytes
from collector.evidence.bundle import BundleResult, build_bundle
from collector.evidence.query import EvidenceQuery
from collector.ingest.accept import batch_seq, store_signed_batch
from collector.ingest.verify import read_batch_envelope
from collector.storage import IngestResult, Storage, open_storage
from tests.agent.wire.batches import AGENT, DAY, KEY, NOW, clones

__all__ = [
    "AGENT",
    "ASN",
    "COLLECTOR_KEY",
    "ENROLLED",
    "EVERYTHING",
    "KEY",
    "NAME",
    "NOW",
    "bundle_bytes",
    "clones",
    "ingest_signed",
    "signed_storage",
    "write_bundle",
]

ASN, CC = 64500, "PK"
ENROLLED = NOW - 30 * DAY
NAME = "Volunteer in Karachi"  # an operator's name for the agent: never in a bundle
COLLECTOR_KEY = Ed25519PrivateKey.generate()
EVERYTHING = EvidenceQuery(None, (), 0, NOW + DAY)


def signed_storage(url: str) -> Storage:
    storage = open_storage(url)
    storage.add_agent(AGENT, NAME, public_key_bytes(KEY), ENROLLED)
    return storage


def ingest_signed(
    storage: Storage,
    seq: int,
    measurements: Sequence[SiteMeasurement],
    asn: int | None = ASN,
    *,
    received_ms: int = NOW,
    checks: Sequence[tuple[int, bool]] = (),
) -> IngestResult:
    """One batch signed by the agent's key, checked and stored the way ingest does."""
    data = encode_batch(AGENT, seq, measurements, KEY, created_ms=NOW, checks=checks)
    envelope = read_batch_envelope(data)
    return store_signed_batch(
        storage, envelope, received_ms, asn, CC if asn else None, batch_seq(envelope)
    )


def bundle_bytes(
    storage: Storage, query: EvidenceQuery = EVERYTHING, key: Ed25519PrivateKey = COLLECTOR_KEY
) -> tuple[bytes, BundleResult]:
    out = io.BytesIO()
    result = build_bundle(storage, query, key, out)
    return out.getvalue(), result


def write_bundle(storage: Storage, path: Path, query: EvidenceQuery = EVERYTHING) -> BundleResult:
    data, result = bundle_bytes(storage, query)
    path.write_bytes(data)
    return result
