"""Deploy test fixtures: deploy/install-collector.sh and deploy/install-agent.sh, run for real
into a temporary root.

One root for the whole package (the first install builds the virtualenv, which is most of
the time): the collector is installed, served on loopback from that virtualenv to hand out an
enrolment token, then the agent is installed and enrolled against it. The system users
``netsonde`` and ``netsonde-collector`` are created on this machine, as the scripts do (the
files are owned by them), and removed afterwards if the tests created them.

Needs root. A normal user gets a skip saying so; under CI=true that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.scripts import (
    AGENT_USER,
    COLLECTOR_USER,
    VENV,
    ArgvWatch,
    Installed,
    as_user,
    assert_ok,
    free_port,
    run_script,
    unavailable_reason,
    user_exists,
    wait_healthy,
)


# Package scope, like the fixtures below, so that it runs before them.
@pytest.fixture(scope="package", autouse=True)
def _require_root() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the deploy tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def users() -> Iterator[None]:
    existed = {u for u in (AGENT_USER, COLLECTOR_USER) if user_exists(u)}
    yield
    for user in (AGENT_USER, COLLECTOR_USER):
        if user not in existed and user_exists(user):
            subprocess.run(["userdel", user], check=False, capture_output=True)


@pytest.fixture(scope="package")
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700, and the service users must reach the
    # virtualenv inside, as they would reach /opt/netsonde/venv.
    path = Path(tempfile.mkdtemp(prefix="netsonde-deploy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def installed(root: Path, users: None) -> Iterator[Installed]:
    collector = run_script("install-collector.sh", "--root", str(root))
    collector_output = assert_ok(collector)
    venv_bin = root / VENV / "bin"
    db = f"sqlite:///{root}/var/lib/netsonde-collector/netsonde.db"
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="netsonde-deploy-log-")) / "collector.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        # setpriv execs the collector itself (runuser would stay as its parent), so the
        # SIGTERM below reaches it directly.
        ["setpriv", f"--reuid={COLLECTOR_USER}", f"--regid={COLLECTOR_USER}", "--clear-groups",
         str(venv_bin / "netsonde-collector"), "serve",
         "--listen", f"127.0.0.1:{port}", "--db", db],
        stdout=log, stderr=subprocess.STDOUT, cwd="/",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server, log_path)
        enroll = as_user(
            COLLECTOR_USER, str(venv_bin / "netsonde-collector"), "enroll", "--name",
            "deploy-test", "--db", db,
        )  # fmt: skip
        assert enroll.returncode == 0, enroll.stderr
        token = enroll.stdout.split()[0]
        with ArgvWatch(token) as watch:
            agent = run_script(
                "install-agent.sh", "--root", str(root), "--collector", url,
                "--token-file", "-", stdin=token + "\n",
            )  # fmt: skip
        yield Installed(root, collector_output, assert_ok(agent), url, db, watch.found)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(log_path.parent)


@pytest.fixture(scope="package")
def verify_root(installed: Installed) -> Path:
    # verify --root resolves the units' dependencies (multi-user.target, ...) inside the
    # root too: give it the host's.
    system = installed.root / "usr/lib/systemd/system"
    if not system.exists():
        shutil.copytree("/usr/lib/systemd/system", system, symlinks=True)
    return installed.root
