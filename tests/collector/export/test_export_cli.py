"""``netsonde-collector export``: the stored rows to a file or stdout, the query's filters,
progress and errors on stderr, exit 2 for a bad option; a file appears only complete."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.storage import open_storage
from collector.web.queries import measurement_view
from tests import REPO
from tests.collector.export.data import T0, Stored, fill
from tests.collector.storage.records import AGENT


@pytest.fixture
def stored(storage_url: str) -> Iterator[tuple[str, list[Stored]]]:
    storage = open_storage(storage_url)
    storage.add_agent(AGENT, "test agent", b"\x01" * 32, 0)
    try:
        yield storage_url, fill(storage)
    finally:
        storage.close()


def rows(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def test_jsonl_to_a_file(
    stored: tuple[str, list[Stored]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, expected = stored
    out = tmp_path / "out" / "export.jsonl"
    out.parent.mkdir()
    assert main(["export", "--db", url, "--out", str(out)]) == 0
    assert rows(out.read_text()) == [measurement_view(s.row, operator=False) for s in expected]
    assert f"exported {len(expected)} measurements" in capsys.readouterr().err
    assert [p.name for p in out.parent.iterdir()] == ["export.jsonl"]  # no partial file left


def test_ooni_to_stdout_filtered_with_agents(
    stored: tuple[str, list[Stored]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    url, expected = stored
    argv = [
        "export",
        "--db",
        url,
        "--format",
        "ooni",
        "--asn",
        "64500",
        "--asn",
        "AS64501",
        "--since",
        str(T0 + 2_000),
        "--until",
        "2030-01-01",
        "--with-agents",
    ]
    assert main(argv) == 0
    got = rows(capsysbinary.readouterr().out.decode())
    want = [s for s in expected if s.row.asn is not None and s.row.measured_ms >= T0 + 2_000]
    assert [row["id"] for row in got] == [s.row.id for s in want]
    assert [row["annotations"]["netsonde_agent_id"] for row in got] == [
        s.row.agent_id for s in want
    ]


@pytest.mark.parametrize(
    "option",
    [
        ["--since", "last week"],
        ["--asn", "ASX"],
        ["--domain", "a b"],
        ["--db", "mysql://x/y"],
        ["--since", "2", "--until", "1"],
    ],
)
def test_bad_options_exit_2(
    option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--db", f"sqlite:///{tmp_path}/c.db", *option]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("netsonde-collector: error:")


def test_an_unwritable_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "export.jsonl"
    assert main(["export", "--db", f"sqlite:///{tmp_path}/c.db", "--out", str(out)]) == 1
    assert "export.jsonl" in capsys.readouterr().err
    assert not out.parent.exists()


def test_help_stays_light() -> None:
    code = (
        "import sys; from collector.cli import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert not {'aiohttp', 'sqlalchemy', 'cryptography', 'msgpack'} & set(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--format" in done.stdout
    assert "--with-agents" in done.stdout
