"""The report served at /report and written by `netsonde-collector report`: the same bytes,
its headers, and clear errors for a bad query. Real app and CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.api.paths import REPORT_PATH
from collector.config import Settings
from collector.storage import open_storage
from tests import REPO
from tests.collector.app_client import operator, running
from tests.collector.incidents.stored import HOUR, T0, Filler

SINCE, UNTIL = str(T0 - HOUR), "2023-11-18T00:00:00"


def report_cli(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", "report", *argv],
        cwd=REPO, capture_output=True, check=False, timeout=120,
    )  # fmt: skip


def filled(url: str) -> None:
    storage = open_storage(url)
    try:
        fill = Filler(storage)
        fill.add("tls.reset tls.reset tls.reset ok", "x.com", T0)
        fill.add("tls.reset tls.reset tls.reset", "x.com", T0 + HOUR, asn=64501, agent="agent-b")
    finally:
        storage.close()


@pytest.mark.asyncio
async def test_the_cli_writes_the_bytes_the_collector_serves(
    storage_url: str, tmp_path: Path
) -> None:
    filled(storage_url)
    out = tmp_path / "report.html"
    networks = ["--asn", "64500", "--asn", "AS64501"]
    period = ["--since", SINCE, "--until", UNTIL]
    done = report_cli(
        "--db", storage_url, "--domain", "x.com", *networks, *period, "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert b"wrote" in done.stdout
    query = {"domain": "x.com", "since": SINCE, "until": UNTIL}
    async with running(Settings(db_url=storage_url)) as client:
        params = [*query.items(), ("asn", "64500"), ("asn", "64501")]
        response = await client.get(REPORT_PATH, params=params)
        assert response.status == 200, await response.text()
        served = await response.read()
        assert response.content_type == "text/html"
        assert "style-src 'sha256-" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert served == out.read_bytes()
    assert b"x.com was blocked on AS64500 (PK) and AS64501 (PK)" in served


@pytest.mark.asyncio
async def test_a_bad_query_is_a_clear_400(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        for params, message in [
            ({"domain": "x.com"}, "'since' and 'until' are required"),
            ({"domain": "x com", "since": SINCE, "until": UNTIL}, "expected a host name"),
            ({"since": UNTIL, "until": SINCE}, "since: must be before until"),
            ({"since": SINCE, "until": UNTIL, "cc": "PK"}, "unknown parameter 'cc'"),
            ({"since": SINCE, "until": UNTIL, "asn": "AS99999999999"}, "asn"),
            ({"since": "yesterday", "until": UNTIL}, "since"),
            ({"since": SINCE, "until": str(2**62)}, "up to the year 9999"),
            ({"since": "2025-01-01", "until": "2026-01-01"}, "at most 92 days"),
        ]:
            response = await client.get(REPORT_PATH, params=params)
            assert response.status == 400, params
            assert message in (await response.json())["error"], params


def test_the_cli_refuses_a_bad_query_with_status_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    out = tmp_path / "r.html"
    for argv, message in [
        (["--domain", "x com", "--since", SINCE, "--until", UNTIL], b"expected a host name"),
        (["--since", UNTIL, "--until", SINCE], b"since: must be before until"),
        (["--since", SINCE, "--until", UNTIL, "--incident-window", "0"], b"window"),
        (["--since", SINCE, "--until", "10000000000000000"], b"up to the year 9999"),
    ]:
        done = report_cli("--db", db, *argv, "--out", str(out))
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert not out.exists()
    missing = report_cli("--db", db, "--since", SINCE, "--out", str(out))
    assert missing.returncode == 2
    assert b"--until" in missing.stderr


@pytest.mark.asyncio
async def test_the_operator_may_ask_for_a_longer_report(storage_url: str) -> None:
    year = {"since": "2023-01-01", "until": "2024-01-01", "domain": "x.com"}
    async with running(Settings(db_url=storage_url)) as client:
        response = await client.get(REPORT_PATH, params=year, headers=operator(client))
        assert response.status == 200, await response.text()
        assert b"No measurements of x.com" in await response.read()
