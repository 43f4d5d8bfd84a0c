"""`netsonde-collector reclassify`: stale stored verdicts are decided again from the records."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from agent.model.failures import CONNECTION_RESET as RESET
from agent.model.measurement import Verdict
from agent.model.observations import TLSHandshake
from collector.storage import Storage
from tests.agent.wire.examples import REDIRECTED
from tests.collector.storage.helpers import counts_from_rows, stored_verdicts
from tests.collector.storage.records import AGENT, batch, ingest_records
from tests.shared_data import REPO_ROOT, shared_file


def test_reclassify_command_restores_the_rules_verdicts(storage: Storage, storage_url: str) -> None:
    records = batch(40)
    # As if stored by an older, wrong agent.verdict: everything claimed "ok".
    stale = [r._replace(verdict="ok") for r in records]
    storage.ingest(AGENT, stale, 17557, "PK", 1_700_000_000_000)
    argv = [sys.executable, "-m", "collector.cli", "reclassify", "--db", storage_url]
    for name in ("fingerprints-http.csv", "fingerprints-dns.csv"):
        argv += ["--fingerprints", str(shared_file(name))]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    wrong = sum(r.verdict != "ok" for r in records)
    assert f"reclassified 40 measurements: {wrong} changed verdict" in done.stdout
    verdicts = stored_verdicts(storage)
    assert {r.key: r.verdict for r in records} == verdicts
    assert storage.rollup_counts() == counts_from_rows(storage)


def test_reclassify_refuses_a_bad_database_url() -> None:
    argv = [sys.executable, "-m", "collector.cli", "reclassify", "--db", "mysql://x/y"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unsupported database" in done.stderr


def test_a_stored_redirect_chain_is_decided_at_the_hop_that_failed(
    storage: Storage, storage_url: str
) -> None:
    """A version 2 record keeps its hops; reclassification walks them as the agent did."""
    blocked = dataclasses.replace(
        REDIRECTED.hops[0],
        agent=dataclasses.replace(
            REDIRECTED.hops[0].agent,
            endpoints=tuple(
                dataclasses.replace(e, tls=TLSHandshake.failed("www.example.net", 3.0, RESET))
                for e in REDIRECTED.hops[0].agent.endpoints
            ),
        ),
    )
    chain = dataclasses.replace(REDIRECTED, hops=(blocked,), verdict=Verdict("ok"))
    storage.ingest(AGENT, ingest_records([chain]), 17557, "PK", 1_700_000_000_000)
    argv = [sys.executable, "-m", "collector.cli", "reclassify", "--db", storage_url]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reclassified 1 measurements: 1 changed verdict" in done.stdout
    assert set(stored_verdicts(storage).values()) == {"tls.reset"}
