"""benchmarks/fill_store.py, which the export and dashboard benchmarks fill their stores
with, on SQLite and PostgreSQL: valid records, the rollups ingest makes, batches that verify
against their agents' keys, the outages it plans, the same store for the same seed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgpack
from sqlalchemy import select

from agent.model.measurement import Target
from agent.wire.batch import SIGNATURE_DOMAIN
from agent.wire.keys import public_key_from_bytes
from agent.wire.record import decode_measurement
from benchmarks.fill_store import fill
from collector.outages import find_outages
from collector.storage import open_storage
from collector.storage.schema import HOUR_MS, WEEK_MS, agents, batches, measurements

END = 1_800_000_000_000 // HOUR_MS * HOUR_MS
N = 3000


def rows(url: str, *columns: Any) -> list[Any]:
    storage = open_storage(url)
    try:
        with storage.engine.connect() as conn:
            return list(conn.execute(select(*columns)))
    finally:
        storage.close()


def test_valid_records_and_exact_rollups(storage_url: str) -> None:
    fill(storage_url, N, seed=7, end_ms=END, weeks=2, domains=30, networks=3, batch=200)
    m = measurements.c
    stored = rows(storage_url, m.id, m.measured_ms, m.domain, m.verdict, m.asn, m.cc, m.record)
    assert len(stored) == N
    counts: Counter[tuple[str, int, str, str]] = Counter()
    for _key, measured_ms, domain, verdict, asn, cc, record in stored:
        decoded = decode_measurement(bytes(record))
        assert decoded.verdict.verdict == verdict
        assert decoded.started_ms == measured_ms
        assert Target.parse(decoded.url).host == domain
        assert END - 2 * WEEK_MS <= measured_ms < END
        counts[domain, asn, cc, verdict] += 1
    assert len({domain for domain, *_ in counts}) == 30
    assert {asn for _, asn, *_ in counts} == {17557, 45595, 59257}
    assert {"ok", "offline"} < {verdict for *_, verdict in counts}
    assert sum(n for key, n in counts.items() if key[3] == "ok") > N / 2
    storage = open_storage(storage_url)
    try:
        assert storage.rollup_counts() == dict(counts)
        since = END - 2 * WEEK_MS
        checks = storage.connectivity_checks(since_ms=since, until_ms=END)
        outages = find_outages(checks, now_ms=END, since_ms=since, until_ms=END)
    finally:
        storage.close()
    assert {o.asn for o in outages if o.kind == "offline"} == {17557, 45595, 59257}


def test_batches_verify_against_their_agents_keys(storage_url: str) -> None:
    fill(storage_url, 1000, seed=3, end_ms=END, weeks=1, networks=2, batch=100)
    keys = {
        agent_id: public_key_from_bytes(bytes(key))
        for agent_id, key in rows(storage_url, agents.c.id, agents.c.public_key)
    }
    bodies = {}
    for agent_id, seq, body, signature in rows(
        storage_url, batches.c.agent_id, batches.c.seq, batches.c.body, batches.c.signature
    ):
        keys[agent_id].verify(bytes(signature), SIGNATURE_DOMAIN + bytes(body))
        bodies[agent_id, seq] = msgpack.unpackb(bytes(body), raw=False)
    m = measurements.c
    stored = rows(storage_url, m.agent_id, m.batch_seq, m.batch_index, m.record)
    assert len(stored) == 1000
    for agent_id, seq, index, record in stored:
        packed = msgpack.packb(bodies[agent_id, seq]["m"][index], use_bin_type=True)
        assert packed == bytes(record)


def test_the_same_seed_fills_the_same_store(tmp_path: Any) -> None:
    def ids(name: str, seed: int) -> list[bytes]:
        url = f"sqlite:///{tmp_path / name}"
        fill(url, 300, seed=seed, end_ms=END, weeks=1)
        return sorted(bytes(row[0]) for row in rows(url, measurements.c.id))

    assert ids("a.db", 5) == ids("b.db", 5)
    assert ids("a2.db", 5) != ids("c.db", 6)
