"""Incidents and reports on the lab's data: two agents measure every scenario behind the
censors and upload; a blocked site becomes an incident once both have seen it, a clean site
never does, and the report of a blocked site says how, in words, served and from the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.serving import serving
from tests.lab import engine
from tests.lab.agent import enrolment_token
from tests.lab.collector import NOT_BLOCKING, LabCollector
from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.shell import in_ns

pytestmark = pytest.mark.lab

HOUR = 3_600_000
WINDOW_HOURS = 24
# Two blocking measurements from two agents in a window, as the two runs below give each
# blocked site; one run alone is below both thresholds.
THRESHOLDS = ("--incident-window", str(WINDOW_HOURS), "--incident-min-blocking", "2",
              "--incident-min-agents", "2")  # fmt: skip


@pytest.fixture(scope="module")
def collector(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCollector]:
    directory = tmp_path_factory.mktemp("incidents-collector")
    yield from serving(LabCollector(lab, directory, extra_args=THRESHOLDS))


def measure_and_upload(lab: Lab, collector: LabCollector, where: Path) -> dict[str, Any]:
    """One run of every scenario, uploaded by a newly enrolled agent of its own."""
    where.mkdir()
    records = where / "records.msgpack"
    measured = engine.measure_table(lab, collector_url=collector.url, msgpack_out=records)
    token = enrolment_token(collector.db_url)
    argv = [sys.executable, "-m", "tests.lab.upload", collector.url, token]
    done = lab.run("agent", [*argv, str(records), str(where / "key.pem")], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return measured


def blocking_incidents(collector: LabCollector, since: int, until: int) -> dict[str, Any]:
    body = collector.get_json(f"/api/v1/incidents?since={since}&until={until}")
    assert "agent_id" not in str(body)
    found = [i for i in body["incidents"] if i["kind"] == "blocking"]
    by_domain = {i["domain"]: i for i in found}
    assert len(by_domain) == len(found), "one incident per blocked site here"
    return by_domain


def fetch_bytes(lab: Lab, url: str) -> bytes:
    """GET ``url`` from the net namespace, the body's bytes as they came."""
    script = (
        "import sys, urllib.request as u; sys.stdout.buffer.write(u.urlopen(sys.argv[1]).read())"
    )
    argv = in_ns(lab.topo.ns("net"), [sys.executable, "-c", script, url])
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_blocked_sites_become_incidents_and_clean_ones_never(
    lab: Lab, collector: LabCollector, tmp_path: Path
) -> None:
    first = measure_and_upload(lab, collector, tmp_path / "first")
    times = [r["started_ms"] for r in first.values()]
    since, until = min(times) - 2 * HOUR, max(times) + 2 * HOUR
    assert blocking_incidents(collector, since, until) == {}, "one agent, one run: below"

    second = measure_and_upload(lab, collector, tmp_path / "second")
    until = max(r["started_ms"] for r in second.values()) + 2 * HOUR
    incidents = blocking_incidents(collector, since, until)
    window = WINDOW_HOURS * HOUR
    blocked = clean = 0
    for domain, result in first.items():
        verdicts = {result["verdict"], second[domain]["verdict"]}
        same_window = result["started_ms"] // window == second[domain]["started_ms"] // window
        if verdicts <= {"ok"}:
            clean += 1
            assert domain not in incidents, f"clean {domain} became an incident"
        elif len(verdicts) == 1 and not verdicts & NOT_BLOCKING and same_window:
            blocked += 1
            incident = incidents.get(domain)
            assert incident is not None, f"{domain} ({verdicts}) is no incident"
            assert incident["techniques"] == sorted(verdicts)
            assert (incident["blocking"], incident["agents"], incident["ongoing"]) == (2, 2, True)
    assert clean >= 4, "the lab's clean rows"
    assert blocked >= 10, "the lab's blocked rows"
    assert set(incidents) <= {d for d, r in first.items() if r["verdict"] not in NOT_BLOCKING}

    x_com = incidents["x.com"]
    query = f"domain=x.com&since={since}&until={until}"
    served = fetch_bytes(lab, f"{collector.url}/report?{query}")
    page = served.decode()
    assert "x.com was blocked on an unknown network from" in page
    assert "TLS handshakes reset (tls.reset)" in page
    assert "the same handshake with a benign name succeeded" in page
    assert "<svg" in page
    assert x_com["techniques"] == ["tls.reset"]

    out = tmp_path / "report.html"
    argv = [sys.executable, "-m", "collector.cli", "report", "--db", collector.db_url,
            "--domain", "x.com", "--since", str(since), "--until", str(until), "--out", str(out),
            *THRESHOLDS]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == served
