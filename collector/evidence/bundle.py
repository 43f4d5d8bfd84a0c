"""Collector evidence: the bundle, a signed archive of every measurement behind a query.

A bundle is a canonical ustar archive (``collector.evidence.netsonde_verify`` defines the
format, and checks it; this module only writes): each measurement exactly as its agent
signed it, as the signed batch it came in and its place there; the agents' public keys and
enrolment dates (no names); the collector's receive times and networks; a summary of the
counts a report quotes; a manifest of every file's SHA-256, signed with the collector's
key. Its id is the manifest's SHA-256: the same query on the same data gives the same id,
whenever it is asked (:func:`bundle_id`). Measurements are streamed through a temporary
file and batches read one at a time, so memory stays bounded whatever the query covers.
docs/design/007-evidence.md has the format and its choices.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.wire.keys import public_key_bytes
from collector.evidence.netsonde_verify import (
    AGENTS,
    COLLECTOR_KEY,
    FORMAT,
    MANIFEST,
    MANIFEST_DOMAIN,
    MEASUREMENTS,
    README,
    SIGNATURE,
    SUMMARY,
    TRAILER,
    Summary,
    batch_name,
    canonical_json,
    key_text,
    record_summary,
    tar_header,
    tar_padding,
)
from collector.evidence.query import EvidenceQuery
from collector.ingest.columns import uuid_text
from collector.storage import Storage
from collector.storage.evidence import EvidenceRow, agent_keys, evidence_rows, signed_batch
from collector.storage.evidence import snapshot as read_snapshot

__all__ = ["BundleResult", "build_bundle", "bundle_id"]

_COPY_CHUNK = 1 << 20

_README = """netsonde evidence bundle
========================

Query: {query}

Every measurement of the query is in measurements.jsonl, one JSON object a line: the
collector's verdict, network (ASN, country) and receive time, and where the record its
agent signed is: a file of batches/ (the signed batch exactly as the agent uploaded it,
msgpack {{"b": body, "g": Ed25519 signature over "netsonde-batch-v1\\0" + body}}) and its
index in the body's "m" array. A measurement stored before the collector kept signed
batches has its record inline instead ("record", base64) and cannot be checked against
its agent's key on its own. agents.json has each agent's public key and enrolment time.
summary.json has the counts; manifest.json the SHA-256 of every file, signed with the
collector's key (manifest.sig, over "netsonde-evidence-v1\\0" + manifest.json); the
bundle's id is the SHA-256 of manifest.json.

To verify, with Python 3.11+, cryptography and msgpack, and netsonde's single-file
verifier (collector/evidence/netsonde_verify.py in the netsonde source):

    python3 netsonde_verify.py BUNDLE.tar --collector-key KEY

where KEY is the collector's public key as it publishes it (GET /api/v1/collector-key).
"""


@dataclass(frozen=True)
class BundleResult:
    bundle_id: str
    summary: dict[str, Any]


@dataclass
class _Members:
    """The files of a bundle in order, each hashed into the manifest and passed on."""

    write: IO[bytes] | None  # the archive, or None to hash only (bundle_id)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, data: bytes) -> None:
        self._entry(name, len(data), hashlib.sha256(data).hexdigest())
        if self.write is not None:
            self.write.write(tar_header(name, len(data)) + data + tar_padding(len(data)))

    def add_file(self, name: str, spool: IO[bytes], size: int, digest: str) -> None:
        self._entry(name, size, digest)
        if self.write is not None:
            self.write.write(tar_header(name, size))
            spool.seek(0)
            shutil.copyfileobj(spool, self.write, _COPY_CHUNK)
            self.write.write(tar_padding(size))

    def _entry(self, name: str, size: int, digest: str) -> None:
        self.entries.append({"name": name, "size": size, "sha256": digest})


@dataclass
class _Listing:
    """measurements.jsonl as it is written to its spool, and what it refers to."""

    batches: dict[tuple[str, int], str] = field(default_factory=dict)  # -> file name
    summary: Summary = field(default_factory=Summary)
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    def line(self, row: EvidenceRow) -> bytes:
        entry: dict[str, Any] = {
            "id": uuid_text(bytes(row.key)),
            "agent": row.agent_id,
            "measured_ms": row.measured_ms,
            "received_ms": row.received_ms,
            "domain": row.domain,
            "asn": row.asn,
            "cc": row.cc,
            "verdict": row.verdict,
            "batch": None,
            "index": None,
        }
        record = bytes(row.record)
        if row.batch_seq is None:
            entry["record"] = base64.b64encode(record).decode("ascii")
        else:
            ref = (row.agent_id, row.batch_seq)
            name = self.batches.setdefault(ref, batch_name(len(self.batches) + 1))
            entry["batch"], entry["index"] = name, row.batch_index
        self.summary.add(entry, record_summary(record)[3])
        data = canonical_json(entry) + b"\n"
        self.digest.update(data)
        self.size += len(data)
        return data


def _list_measurements(conn: Any, query: EvidenceQuery, spool: IO[bytes]) -> _Listing:
    listing = _Listing()
    rows = evidence_rows(conn, query.domain, query.asns, query.since_ms, query.until_ms)
    for row in rows:
        spool.write(listing.line(row))
    return listing


def _agents_json(conn: Any, agent_ids: set[str]) -> bytes:
    keys = agent_keys(conn, agent_ids)
    return canonical_json(
        {
            "agents": [
                {
                    "agent": agent_id,
                    "public_key": base64.b64encode(keys[agent_id].public_key).decode("ascii"),
                    "enrolled_ms": keys[agent_id].created_ms,
                    "revoked_ms": keys[agent_id].revoked_ms,
                }
                for agent_id in sorted(agent_ids)
            ]
        }
    )


def _write_members(
    storage: Storage, query: EvidenceQuery, members: _Members
) -> tuple[bytes, dict[str, Any]]:
    """Every member before the manifest, into ``members``; the manifest's bytes and the
    summary."""
    with read_snapshot(storage) as conn, tempfile.TemporaryFile() as spool:
        listing = _list_measurements(conn, query, spool)
        members.add(README, _README.format(query=query.describe()).encode())
        members.add(AGENTS, _agents_json(conn, listing.summary.agents))
        for (agent_id, seq), name in listing.batches.items():
            body, signature = signed_batch(conn, agent_id, seq)
            members.add(name, msgpack.packb({"b": body, "g": signature}, use_bin_type=True))
        members.add_file(MEASUREMENTS, spool, listing.size, listing.digest.hexdigest())
        summary = listing.summary.as_json()
        members.add(SUMMARY, canonical_json(summary))
        manifest = {"format": FORMAT, "query": query.as_json(), "files": members.entries}
        return canonical_json(manifest), summary


def bundle_id(storage: Storage, query: EvidenceQuery) -> str:
    """The id of the bundle for ``query`` on the data stored now: the SHA-256 (hex) of its
    manifest, which a report quotes; blocks (reads every batch, to hash it)."""
    manifest, _summary = _write_members(storage, query, _Members(None))
    return hashlib.sha256(manifest).hexdigest()


def build_bundle(
    storage: Storage, query: EvidenceQuery, key: Ed25519PrivateKey, out: IO[bytes]
) -> BundleResult:
    """Writes the bundle for ``query`` to ``out``, signed with the collector's ``key``;
    blocks. LookupError if a batch a measurement names is missing (a damaged store)."""
    manifest, summary = _write_members(storage, query, _Members(out))
    for name, data in (
        (MANIFEST, manifest),
        (SIGNATURE, key.sign(MANIFEST_DOMAIN + manifest)),
        (COLLECTOR_KEY, key_text(public_key_bytes(key))),
    ):
        out.write(tar_header(name, len(data)) + data + tar_padding(len(data)))
    out.write(TRAILER)
    return BundleResult(hashlib.sha256(manifest).hexdigest(), summary)
