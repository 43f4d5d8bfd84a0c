"""``netsonde-agent probe --throttle``: listed in the help, and a usage error without the
collector whose far end it runs through (the lab runs it for real: tests/e2e)."""

from __future__ import annotations

from tests.agent.cli.test_cli import assert_usage_error, run


def test_throttle_is_in_the_probe_help() -> None:
    result = run("probe", "--help")
    assert result.returncode == 0
    assert "--throttle" in result.stdout


def test_throttle_needs_a_collector() -> None:
    assert_usage_error(run("probe", "--throttle", "x.com"), "--throttle needs --collector")
