"""Evidence bundles from real signed batches, on SQLite and PostgreSQL: they verify, hold
what the agents signed and nothing of the operator's, come out the same every time, and
fail verification when anything in them is changed, even by one who re-signs them."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from agent.wire.keys import public_key_bytes
from collector.evidence.bundle import bundle_id
from collector.evidence.key import public_key_text
from collector.evidence.netsonde_verify import (
    AGENTS,
    MANIFEST,
    MANIFEST_DOMAIN,
    MEASUREMENTS,
    SIGNATURE,
    SUMMARY,
    TRAILER,
    Report,
    canonical_json,
    read_archive,
    tar_header,
    tar_padding,
    verify_file,
)
from collector.evidence.netsonde_verify import COLLECTOR_KEY as KEY_FILE
from collector.evidence.query import EvidenceQuery
from collector.storage import Storage
from collector.storage.schema import measurements
from tests.collector.evidence.signed import (
    AGENT,
    ASN,
    COLLECTOR_KEY,
    ENROLLED,
    EVERYTHING,
    KEY,
    NAME,
    NOW,
    bundle_bytes,
    clones,
    ingest_signed,
    signed_storage,
)

OTHER_ASN = 64501


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    store = signed_storage(storage_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[Storage]:
    """For what does not depend on the backend: the bundle's bytes and their checks."""
    store = signed_storage(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        yield store
    finally:
        store.close()


def verified(data: bytes, key: str | None = None) -> Report:
    return verify_file(io.BytesIO(data), key)


def members(data: bytes) -> dict[str, bytes]:
    return dict(read_archive(io.BytesIO(data)))


def test_a_bundle_verifies_and_holds_the_signed_batches(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(4))
    ingest_signed(storage, 2, clones(3), OTHER_ASN)
    data, result = bundle_bytes(storage)
    report = verified(data, public_key_text(COLLECTOR_KEY))
    assert report.ok, report.failures
    assert report.notes == []
    assert report.bundle_id == result.bundle_id == bundle_id(storage, EVERYTHING)
    assert report.summary == result.summary
    assert result.summary["measurements"] == 7
    assert result.summary["batches"] == 2
    assert result.summary["by_asn"] == {f"AS{ASN}": 4, f"AS{OTHER_ASN}": 3}
    by_verdict: dict[str, int] = {}
    for (_domain, _asn, _cc, verdict), n in storage.rollup_counts().items():
        by_verdict[verdict] = by_verdict.get(verdict, 0) + n
    assert result.summary["by_verdict"] == by_verdict
    files = members(data)
    agents = json.loads(files[AGENTS])["agents"]
    assert agents == [
        {
            "agent": AGENT,
            "public_key": public_key_text(KEY),
            "enrolled_ms": ENROLLED,
            "revoked_ms": None,
        }
    ]
    assert not any(NAME.encode() in content for content in files.values())
    lines = [json.loads(line) for line in files[MEASUREMENTS].splitlines()]
    assert {line["received_ms"] for line in lines} == {NOW}
    # The same query on the same data: the same bundle, byte for byte.
    assert bundle_bytes(storage)[0] == data


def test_the_query_picks_the_domain_networks_and_period(storage: Storage) -> None:
    measured = clones(6)
    ingest_signed(storage, 1, measured[:3])
    ingest_signed(storage, 2, measured[3:], OTHER_ASN)
    domains = sorted({m.url.split("/")[2] for m in measured})
    one = domains[0]
    query = EvidenceQuery(one, (OTHER_ASN,), 0, NOW + 1)
    data, result = bundle_bytes(storage, query)
    assert verified(data).ok
    expected = [m for m in measured[3:] if m.url.split("/")[2] == one]
    assert result.summary["measurements"] == len(expected)
    lines = [json.loads(line) for line in members(data)[MEASUREMENTS].splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(m.id for m in expected)
    empty = EvidenceQuery(None, (), NOW + 1, NOW + 2)
    data, result = bundle_bytes(storage, empty)
    assert verified(data).ok
    assert result.summary["measurements"] == 0


def test_as_0_is_the_unknown_network(storage: Storage) -> None:
    """As in the rollups and the query API: a bundle for AS 0 holds the measurements whose
    network is unknown, so a report and its bundle count the same."""
    measured = clones(4)
    ingest_signed(storage, 1, measured[:3], None)
    ingest_signed(storage, 2, measured[3:])
    data, result = bundle_bytes(storage, EvidenceQuery(None, (0,), 0, NOW + 1))
    assert verified(data).ok
    assert result.summary["measurements"] == 3
    data, result = bundle_bytes(storage, EvidenceQuery(None, (0, ASN), 0, NOW + 1))
    assert result.summary["measurements"] == 4


def test_a_query_past_year_9999_is_described() -> None:
    assert EvidenceQuery(None, (), 0, 2**62).describe().endswith(f"to {2**62} ms")


def test_every_changed_byte_fails_verification(sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    ingest_signed(storage, 1, clones(1))
    data, _ = bundle_bytes(storage)
    assert verified(data).ok
    passed = []
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x5A
        if verified(bytes(changed)).ok:
            passed.append(position)
    assert passed == []
    assert not verified(data[:-1]).ok
    assert not verified(data + b"\0").ok


def test_a_bundle_checked_against_another_collector_key_fails(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(2))
    data, _ = bundle_bytes(storage)
    other = public_key_text(Ed25519PrivateKey.generate())
    report = verified(data, other)
    assert not report.ok
    assert any("another collector key" in failure for failure in report.failures)
    assert not verified(data, "not base64!").ok


def resigned(data: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    """The bundle after ``edit`` changed its files, with its manifest made to match and
    signed again by the collector's key: what an insider could produce."""
    files = members(data)
    edit(files)
    manifest = json.loads(files[MANIFEST])
    for entry in manifest["files"]:
        content = files[entry["name"]]
        entry["sha256"], entry["size"] = hashlib.sha256(content).hexdigest(), len(content)
    files[MANIFEST] = canonical_json(manifest)
    files[SIGNATURE] = COLLECTOR_KEY.sign(MANIFEST_DOMAIN + files[MANIFEST])
    out = b"".join(tar_header(n, len(c)) + c + tar_padding(len(c)) for n, c in files.items())
    return out + TRAILER


def _edit_line(field: str, value: object) -> Callable[[dict[str, bytes]], None]:
    """An edit of the first measurement's ``field``: to ``value``, or to the next place in
    its batch for the index."""

    def edit(files: dict[str, bytes]) -> None:
        lines = [json.loads(line) for line in files[MEASUREMENTS].splitlines()]
        old = lines[0][field]
        lines[0][field] = (old + 1) % len(lines) if field == "index" else value
        assert lines[0][field] != old
        files[MEASUREMENTS] = b"".join(canonical_json(line) + b"\n" for line in lines)

    return edit


def _edit_summary(files: dict[str, bytes]) -> None:
    summary = json.loads(files[SUMMARY])
    summary["by_verdict"]["ok"] = summary["by_verdict"].get("ok", 0) + 1
    files[SUMMARY] = canonical_json(summary)


@pytest.mark.parametrize(
    ("edit", "failure"),
    [
        (_edit_summary, "do not follow from the measurements"),
        (_edit_line("verdict", "tls.reset"), "do not follow from the measurements"),
        (_edit_line("index", None), "differs from the record's"),
        (_edit_line("measured_ms", 1), "differs from the record's"),
        (_edit_line("domain", "other.example"), "differs from the record's"),
        (_edit_line("asn", 1), "do not follow"),
    ],
)
def test_a_re_signed_bundle_whose_records_do_not_back_it_fails(
    sqlite_storage: Storage, edit: Callable[[dict[str, bytes]], None], failure: str
) -> None:
    storage = sqlite_storage
    ingest_signed(storage, 1, clones(3))
    data, _ = bundle_bytes(storage)
    assert verified(resigned(data, lambda files: None)).ok  # the helper changes nothing
    report = verified(resigned(data, edit))
    assert not report.ok
    assert any(failure in f for f in report.failures), report.failures


def test_a_batch_signed_by_another_key_fails(sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    ingest_signed(storage, 1, clones(2))
    data, _ = bundle_bytes(storage)

    def other_agent_key(files: dict[str, bytes]) -> None:
        agents = json.loads(files[AGENTS])
        other = public_key_text(Ed25519PrivateKey.generate())
        agents["agents"][0]["public_key"] = other
        files[AGENTS] = canonical_json(agents)

    report = verified(resigned(data, other_agent_key))
    assert any("signature does not verify with the key" in f for f in report.failures)


def test_measurements_stored_before_batches_were_kept_are_marked(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(2))
    ingest_signed(storage, 2, clones(1))
    # As a 0010 collector stored them: no batch named (and no batches table row used).
    with storage.engine.begin() as conn:
        conn.execute(update(measurements).where(measurements.c.batch_seq == 2).values(
            batch_seq=None, batch_index=None))  # fmt: skip
    data, result = bundle_bytes(storage)
    assert result.summary["not_individually_verifiable"] == 1
    assert result.summary["individually_verifiable"] == 2
    report = verified(data)
    assert report.ok, report.failures
    assert any("cannot be checked against their agent's key" in n for n in report.notes)
    lines = [json.loads(line) for line in members(data)[MEASUREMENTS].splitlines()]
    assert sum(line["batch"] is None and "record" in line for line in lines) == 1


def test_a_reclassified_verdict_is_counted_as_the_collector_has_it(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(2))
    with storage.engine.begin() as conn:
        first = conn.execute(measurements.select().limit(1)).first()
        assert first is not None
        conn.execute(update(measurements).where(measurements.c.id == first.id).values(
            verdict="tls.reset"))  # fmt: skip
    data, result = bundle_bytes(storage)
    assert result.summary["reclassified"] == 1
    assert result.summary["by_verdict"].get("tls.reset") == 1
    assert verified(data).ok


def test_the_bundle_names_the_collector_key(storage: Storage) -> None:
    ingest_signed(storage, 1, clones(1))
    data, _ = bundle_bytes(storage)
    text = members(data)[KEY_FILE].decode().strip()
    assert text == public_key_text(COLLECTOR_KEY)
    assert len(public_key_bytes(COLLECTOR_KEY)) == 32
