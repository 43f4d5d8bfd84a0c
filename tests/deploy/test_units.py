"""The systemd units the install scripts installed (byte for byte the shipped ones), checked
with ``systemd-analyze verify --root``, which also checks that ExecStart= names the
virtualenv's real commands, and ``systemd-analyze security``.

Needs root. A normal user gets a skip saying so; under CI=true that is a failure.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.deploy.scripts import AGENT_UNIT, COLLECTOR_UNIT, UNITS, verify_units


def test_systemd_analyze_verify_accepts_the_installed_units(verify_root: Path) -> None:
    result = verify_units(verify_root, AGENT_UNIT, COLLECTOR_UNIT)
    # Unknown keys are only warnings (exit 0): any output at all is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_is_not_vacuous(verify_root: Path) -> None:
    units = verify_root / "etc/systemd/system"
    shipped = (UNITS / AGENT_UNIT).read_text()
    broken = {
        "netsonde-test-exec.service": shipped.replace(
            "/venv/bin/netsonde-agent run", "/venv/bin/netsonde-agent-missing run"
        ),
        "netsonde-test-key.service": shipped.replace("ProtectSystem=", "ProtectSytem="),
    }
    try:
        for name, text in broken.items():
            assert text != shipped
            (units / name).write_text(text)
        missing = verify_units(verify_root, "netsonde-test-exec.service")
        assert missing.returncode != 0
        assert "netsonde-agent-missing" in missing.stderr
        typo = verify_units(verify_root, "netsonde-test-key.service")
        assert "Unknown key 'ProtectSytem'" in typo.stderr
    finally:
        for name in broken:
            (units / name).unlink(missing_ok=True)


def test_the_units_are_hardened(verify_root: Path) -> None:
    for unit, ceiling in ((AGENT_UNIT, 2.5), (COLLECTOR_UNIT, 2.0)):
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", f"--root={verify_root}", unit],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        line = next(x for x in result.stdout.splitlines() if "Overall exposure level" in x)
        exposure = float(line.split(":")[1].split()[0])
        assert exposure <= ceiling, line
    agent = (UNITS / AGENT_UNIT).read_text().splitlines()
    for directive in (
        "User=netsonde", "CapabilityBoundingSet=CAP_NET_RAW", "AmbientCapabilities=CAP_NET_RAW",
        "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
        "StateDirectory=netsonde", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "MemoryMax=128M", "Restart=on-failure", "KillSignal=SIGTERM",
        "ExecStart=/opt/netsonde/venv/bin/netsonde-agent run --config /etc/netsonde/agent.toml",
    ):  # fmt: skip
        assert directive in agent
    collector = (UNITS / COLLECTOR_UNIT).read_text().splitlines()
    assert "CapabilityBoundingSet=" in collector
    assert "AmbientCapabilities=" in collector
    assert "StateDirectory=netsonde-collector" in collector
    # The control must never reach link-local addresses (cloud metadata), whatever the code.
    assert "IPAddressDeny=169.254.0.0/16 fe80::/10" in collector
