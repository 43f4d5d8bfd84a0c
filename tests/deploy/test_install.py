"""deploy/install-collector.sh and deploy/install-agent.sh into a temporary root (the
``installed`` fixture, tests/deploy/conftest.py): what they write, the commands they install,
and a second run that changes nothing.

Needs root. A normal user gets a skip saying so; under CI=true that is a failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from pathlib import Path

from tests.deploy.scripts import (
    AGENT_UNIT,
    AGENT_USER,
    COLLECTOR_UNIT,
    COLLECTOR_USER,
    DEPLOY,
    UNITS,
    VENV,
    ArgvWatch,
    Installed,
    as_user,
    assert_ok,
    owner,
    run_script,
    snapshot,
)


def test_collector_install_writes_options_database_and_unit(installed: Installed) -> None:
    root = installed.root
    env_file = root / "etc/netsonde/collector.env"
    assert owner(env_file) == (0o640, "root", COLLECTOR_USER)
    text = env_file.read_text()
    assert "NETSONDE_DB='sqlite:////var/lib/netsonde-collector/netsonde.db'" in text
    assert "NETSONDE_LISTEN=127.0.0.1:8080" in text
    assert "--trusted-proxy 127.0.0.1" in text
    assert owner(root / "etc/netsonde") == (0o755, "root", "root")
    assert owner(root / "var/lib/netsonde-collector") == (0o750, COLLECTOR_USER, COLLECTOR_USER)
    db = root / "var/lib/netsonde-collector/netsonde.db"
    assert owner(db)[1:] == (COLLECTOR_USER, COLLECTOR_USER)
    unit = root / "etc/systemd/system" / COLLECTOR_UNIT
    assert unit.read_bytes() == (UNITS / COLLECTOR_UNIT).read_bytes()
    assert owner(unit) == (0o644, "root", "root")
    wants = root / "etc/systemd/system/multi-user.target.wants" / COLLECTOR_UNIT
    assert os.readlink(wants) == f"/etc/systemd/system/{COLLECTOR_UNIT}"
    output = installed.collector_output
    assert "netsonde-collector enroll --name" in output
    assert "deploy/install-agent.sh --collector" in output
    assert "not started: --root" in output


def test_agent_install_writes_config_state_and_unit(installed: Installed) -> None:
    root = installed.root
    config = root / "etc/netsonde/agent.toml"
    assert owner(config) == (0o640, "root", AGENT_USER)
    # The example, with only the collector URL filled in.
    template = (DEPLOY / "agent.toml").read_text()
    expected = template.replace(
        'urls = ["https://collector.example.org"]\n', f'urls = ["{installed.collector_url}"]\n', 1
    )
    assert expected != template
    assert config.read_text() == expected
    state = root / "var/lib/netsonde"
    assert owner(state) == (0o700, AGENT_USER, AGENT_USER)
    assert owner(state / "agent.key") == (0o600, AGENT_USER, AGENT_USER)
    assert owner(state / "agent.json") == (0o600, AGENT_USER, AGENT_USER)
    unit = root / "etc/systemd/system" / AGENT_UNIT
    assert unit.read_bytes() == (UNITS / AGENT_UNIT).read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants" / AGENT_UNIT
    assert os.readlink(wants) == f"/etc/systemd/system/{AGENT_UNIT}"
    assert "enrolled as ag-" in installed.agent_output


def test_the_enrolment_token_was_on_no_command_line(installed: Installed) -> None:
    assert "enrolled as ag-" in installed.agent_output
    assert installed.token_argv == []
    # The watch sees a command that does carry it: the check above can fail.
    secret = "netsonde-argv-watch-" + secrets.token_hex(8)
    with ArgvWatch(secret) as watch:
        subprocess.run(["sh", "-c", "sleep 0.5", "sh", secret], check=True)
    assert any(secret in argv for argv in watch.found)


def test_the_venv_commands_work_as_the_service_users(installed: Installed) -> None:
    bin_dir = installed.root / VENV / "bin"
    for user, command in ((AGENT_USER, "netsonde-agent"), (COLLECTOR_USER, "netsonde-collector")):
        result = as_user(user, str(bin_dir / command), "--help")
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
    root = installed.root
    status = as_user(
        AGENT_USER, str(bin_dir / "netsonde-agent"), "status",
        "--config", str(root / "etc/netsonde/agent.toml"),
        "--state-dir", str(root / "var/lib/netsonde"),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "agent id:      ag-" in status.stdout
    assert installed.collector_url in status.stdout
    agents = as_user(
        COLLECTOR_USER, str(bin_dir / "netsonde-collector"), "agents", "list",
        "--db", installed.collector_db,
    )  # fmt: skip
    assert agents.returncode == 0, agents.stderr
    assert "deploy-test" in agents.stdout


def test_second_runs_change_nothing_and_keep_local_edits(
    installed: Installed, verify_root: Path
) -> None:
    root = installed.root
    # Operator edits that a second run must keep.
    config = root / "etc/netsonde/agent.toml"
    config.write_text(config.read_text() + "# edited by the operator\n")
    env_file = root / "etc/netsonde/collector.env"
    env_file.write_text(env_file.read_text() + "# edited by the operator\n")
    before = snapshot(root)

    postgres = "postgresql://netsonde@db.example.org/netsonde"  # ignored: the file exists
    args = ["--root", str(root), "--no-systemd", "--postgres", postgres]
    collector = assert_ok(run_script("install-collector.sh", *args))
    assert "collector.env exists: kept as it is" in collector
    assert "do not change an existing" in collector
    assert f"unit /etc/systemd/system/{COLLECTOR_UNIT} unchanged" in collector
    assert "--no-systemd: not enabling or starting" in collector

    # The token was used up by the first run; a second run must not try it again.
    with tempfile.NamedTemporaryFile("w", suffix=".token") as token:
        token.write("used-up\n")
        token.flush()
        args = ["--root", str(root), "--collector", installed.collector_url]
        agent = assert_ok(run_script("install-agent.sh", *args, "--token-file", token.name))
    assert "agent.toml exists: kept as it is" in agent
    assert "already enrolled (ag-" in agent
    assert f"unit /etc/systemd/system/{AGENT_UNIT} unchanged" in agent

    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    help_ = as_user(AGENT_USER, str(root / VENV / "bin/netsonde-agent"), "--help")
    assert help_.returncode == 0, help_.stderr
