"""``netsonde-agent probe --protocols``: it needs the collector (its far end) and is not the
throttle test; ``--help`` names it without loading the probe."""

from __future__ import annotations

import subprocess
import sys

from tests.agent.cli.test_cli import assert_usage_error, run


def test_protocols_needs_a_collector_and_not_throttle() -> None:
    assert_usage_error(run("probe", "--protocols", "x.com"), "--protocols needs --collector")
    both = run("probe", "--protocols", "--throttle", "--collector", "http://127.0.0.1:9", "x.com")
    assert_usage_error(both, "--protocols")


def test_help_names_it_and_stays_light() -> None:
    assert "--protocols" in run("probe", "--help").stdout
    code = (
        "import sys, agent.cli.main; agent.cli.main.build_parser(); "
        "print([m for m in ('agent.probes.protocols', 'agent.net.quic') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
