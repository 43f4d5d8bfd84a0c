"""Unit tests for the netsonde-agent command line: usage errors and help, run as a subprocess.

Only paths that stop before measuring are exercised: unit tests must not send network
traffic (the end-to-end probe test runs in the censor lab).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import build_parser
from tests import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last
    for needle in needles:
        assert needle in last


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "probe" in result.stdout


def test_no_command_prints_help() -> None:
    result = run()
    assert result.returncode == 0
    assert "usage: netsonde-agent" in result.stdout


def test_probe_help_lists_every_option() -> None:
    result = run("probe", "--help")
    assert result.returncode == 0
    for option in (
        "--collector",
        "--resolver",
        "--benign-sni",
        "--ca-file",
        "--fingerprints",
        "--concurrency",
        "--timeout",
        "--json",
        "--msgpack-out",
        "--quiet",
        "@FILE",
        "msgpack.Unpacker",
    ):
        assert option in result.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, agent.cli\n"
        "heavy = ('aiohttp', 'dns', 'msgpack', 'rich', 'cryptography', 'scapy', 'asyncio')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_no_targets() -> None:
    assert_usage_error(run("probe"), "no targets")


def test_only_bad_targets_is_no_targets(tmp_path: Path) -> None:
    result = run("probe", "foo bar", f"@{tmp_path / 'missing.csv'}")
    assert_usage_error(result, "no targets")
    assert "'foo bar'" in result.stderr
    assert "missing.csv: cannot read test list" in result.stderr


def test_empty_test_list_is_no_targets(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("url,category_code\nftp://x.org/,NEWS\n", encoding="utf-8")
    result = run("probe", f"@{path}")
    assert_usage_error(result, "no targets")
    assert f"{path}:2:" in result.stderr


@pytest.mark.parametrize("value", ["1.2.3", "example.com", "300.1.1.1", ""])
def test_bad_resolver(value: str) -> None:
    assert_usage_error(run("probe", "--resolver", value, "x.com"), "--resolver", "IP address")


def test_missing_ca_file(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    assert_usage_error(run("probe", "--ca-file", str(missing), "x.com"), "--ca-file", str(missing))


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_concurrency(value: str) -> None:
    assert_usage_error(run("probe", "--concurrency", value, "x.com"), "--concurrency")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_bad_timeout(value: str) -> None:
    assert_usage_error(run("probe", "--timeout", value, "x.com"), "--timeout")


@pytest.mark.parametrize("value", ["bad name", "-x.example", "a..b", ""])
def test_bad_benign_sni(value: str) -> None:
    # "=": argparse would take a value starting with "-" for an option of its own.
    result = run("probe", f"--benign-sni={value}", "x.com")
    assert_usage_error(result, "--benign-sni", "host name")


def test_benign_sni_is_normalised_and_may_hold_underscores() -> None:
    args = build_parser().parse_args(["probe", "--benign-sni", " My_Host.Example. ", "x.com"])
    assert args.benign_sni == "my_host.example"


def test_bad_collector_url() -> None:
    assert_usage_error(run("probe", "--collector", "ftp://c.org", "x.com"), "--collector")


def test_unknown_option() -> None:
    assert_usage_error(run("probe", "--frobnicate", "x.com"), "--frobnicate", "probe --help")


def test_unwritable_msgpack_out(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "out.msgpack"
    assert_usage_error(run("probe", "--msgpack-out", str(out), "x.com"), "--msgpack-out")
