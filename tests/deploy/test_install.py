"""deploy/install-collector.sh and deploy/install-agent.sh, run for real into a temporary root.

One root per test session (the first install builds the virtualenv, which is most of the
time): the collector is installed, served on loopback from that virtualenv to hand out an
enrolment token, then the agent is installed and enrolled against it. The systemd units the
scripts installed (byte for byte the shipped ones) are checked with ``systemd-analyze verify
--root``, which also checks that ExecStart= names the virtualenv's real commands. The system
users ``netsonde`` and ``netsonde-collector`` are created on this machine, as the scripts do
(the files are owned by them), and removed afterwards if the tests created them.

Needs root. A normal user gets a skip saying so; under CI=true that is a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO

DEPLOY = REPO / "deploy"
UNITS = REPO / "systemd"
AGENT_UNIT = "netsonde-agent.service"
COLLECTOR_UNIT = "netsonde-collector.service"
VENV = "opt/netsonde/venv"
AGENT_USER = "netsonde"
COLLECTOR_USER = "netsonde-collector"
INSTALL_TIMEOUT = 600.0
# What the scripts read from the environment; the tests set them explicitly or not at all.
SCRIPT_ENV = (
    "NETSONDE_ROOT", "NETSONDE_PACKAGE", "NETSONDE_COLLECTOR", "NETSONDE_TOKEN",
    "NETSONDE_LISTEN", "NETSONDE_POSTGRES", "NETSONDE_OS_RELEASE", "NETSONDE_ARCH", "PYTHON",
)  # fmt: skip


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the install scripts need root (system users, file owners); run as root"
    missing = [
        t for t in ("systemd-analyze", "systemctl", "useradd", "runuser") if not shutil.which(t)
    ]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install systemd passwd util-linux)"
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip"], check=False).returncode:
        return "/usr/bin/python3 has no venv support (apt-get install python3-venv)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _require_root() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the deploy tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    return env | extra


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / name), *args],
        env=env if env is not None else script_env(),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
        cwd="/",
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"exit {result.returncode}:\n{output}"
    return output


def owner(path: Path) -> tuple[int, str, str]:
    """Mode bits, user and group of ``path`` (not following a symlink)."""
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, _group(st.st_gid)


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every path under ``root`` but the virtualenv (reinstalled on purpose): mode, owner,
    group and content (file bytes, link target)."""
    result: dict[str, tuple[int, int, int, bytes | str | None]] = {}
    venv = root / VENV
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == venv.parent:
            dirnames[:] = [d for d in dirnames if here / d != venv]
        for name in dirnames + filenames:
            path = here / name
            st = path.lstat()
            content: bytes | str | None = None
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(st.st_mode) and not name.startswith("netsonde.db"):
                # The collector's database is left out: the server keeps running.
                content = path.read_bytes()
            key = str(path.relative_to(root))
            result[key] = (st.st_mode, st.st_uid, st.st_gid, content)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Installed:
    root: Path
    collector_output: str
    agent_output: str
    collector_url: str
    collector_db: str


def _as_user(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    existed = {u for u in (AGENT_USER, COLLECTOR_USER) if _user_exists(u)}
    yield
    for user in (AGENT_USER, COLLECTOR_USER):
        if user not in existed and _user_exists(user):
            subprocess.run(["userdel", user], check=False, capture_output=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700, and the service users must reach the
    # virtualenv inside, as they would reach /opt/netsonde/venv.
    path = Path(tempfile.mkdtemp(prefix="netsonde-deploy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
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
        _wait_healthy(url, server, log_path)
        enroll = _as_user(
            COLLECTOR_USER, str(venv_bin / "netsonde-collector"), "enroll", "--name",
            "deploy-test", "--db", db,
        )  # fmt: skip
        assert enroll.returncode == 0, enroll.stderr
        token = enroll.stdout.split()[0]
        agent = run_script(
            "install-agent.sh", "--root", str(root), "--collector", url, "--token", token
        )
        yield Installed(root, collector_output, assert_ok(agent), url, db)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(log_path.parent)


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the collector exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the collector did not answer on {url}:\n{log.read_text()}")


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


def test_the_venv_commands_work_as_the_service_users(installed: Installed) -> None:
    bin_dir = installed.root / VENV / "bin"
    for user, command in ((AGENT_USER, "netsonde-agent"), (COLLECTOR_USER, "netsonde-collector")):
        result = _as_user(user, str(bin_dir / command), "--help")
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
    root = installed.root
    status = _as_user(
        AGENT_USER, str(bin_dir / "netsonde-agent"), "status",
        "--config", str(root / "etc/netsonde/agent.toml"),
        "--state-dir", str(root / "var/lib/netsonde"),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "agent id:      ag-" in status.stdout
    assert installed.collector_url in status.stdout
    agents = _as_user(
        COLLECTOR_USER, str(bin_dir / "netsonde-collector"), "agents", "list",
        "--db", installed.collector_db,
    )  # fmt: skip
    assert agents.returncode == 0, agents.stderr
    assert "deploy-test" in agents.stdout


def _verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def verify_root(installed: Installed) -> Path:
    # verify --root resolves the units' dependencies (multi-user.target, ...) inside the
    # root too: give it the host's.
    system = installed.root / "usr/lib/systemd/system"
    if not system.exists():
        shutil.copytree("/usr/lib/systemd/system", system, symlinks=True)
    return installed.root


def test_systemd_analyze_verify_accepts_the_installed_units(verify_root: Path) -> None:
    result = _verify(verify_root, AGENT_UNIT, COLLECTOR_UNIT)
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
        missing = _verify(verify_root, "netsonde-test-exec.service")
        assert missing.returncode != 0
        assert "netsonde-agent-missing" in missing.stderr
        typo = _verify(verify_root, "netsonde-test-key.service")
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
    args = ["--root", str(root), "--collector", installed.collector_url, "--token", "used-up"]
    agent = assert_ok(run_script("install-agent.sh", *args))
    assert "agent.toml exists: kept as it is" in agent
    assert "already enrolled (ag-" in agent
    assert f"unit /etc/systemd/system/{AGENT_UNIT} unchanged" in agent

    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    help_ = _as_user(AGENT_USER, str(root / VENV / "bin/netsonde-agent"), "--help")
    assert help_.returncode == 0, help_.stderr


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A Python 3 without ensurepip, as Debian's before `apt-get install python3-venv`."""
    path = tmp_path / "python3"
    path.write_text(
        '#!/bin/sh\ncase "$*" in *ensurepip*) exit 1 ;; esac\nexec /usr/bin/python3 "$@"\n'
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def fedora(tmp_path: Path) -> Path:
    path = tmp_path / "os-release"
    path.write_text('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n')
    return path


URL = "http://127.0.0.1:9"
BAD_AGENT_INPUT = [
    (["--collector", "ftp://example.org", "--token", "t"], {}, "not an http(s) URL"),
    (["--collector", 'https://a.example/"x', "--token", "t"], {}, "quotes"),
    (["--token", "t"], {}, "--collector URL is needed"),
    (["--collector", URL, "--token", "two words"], {}, "not an enrolment token"),
    (["--collector"], {}, "--collector needs a value"),
    (["--collector", URL, "--bogus"], {}, "unknown option --bogus"),
    (["--collector", URL, "--root", "relative/dir"], {}, "must be an absolute path"),
    (["--collector", URL], {"NETSONDE_ARCH": "i386"}, "unsupported architecture: i386"),
    (["--collector", URL], {"NETSONDE_OS_RELEASE": "FEDORA"}, "unsupported system: Fedora"),
    (["--collector", URL], {"PYTHON": "FAKE"}, "apt-get install python3-venv"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD_AGENT_INPUT)
def test_install_agent_refuses_bad_input_before_changing_anything(
    args: list[str],
    env: dict[str, str],
    message: str,
    empty_root: Path,
    fake_python: Path,
    fedora: Path,
) -> None:
    values = {"FAKE": str(fake_python), "FEDORA": str(fedora)}
    extra = {k: values.get(v, v) for k, v in env.items()}
    if "--root" not in args and args != ["--collector"]:
        args = [*args, "--root", str(empty_root)]
    result = run_script("install-agent.sh", *args, env=script_env(**extra))
    assert result.returncode != 0
    assert message in result.stderr
    assert list(empty_root.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--postgres", "mysql://db/netsonde"], "--postgres: expected postgresql://"),
        (["--postgres", "postgresql://u:p w@db/n"], "--postgres: expected postgresql://"),
        (["--listen", "8080"], "--listen 8080: expected HOST:PORT"),
        (["--no-such-option"], "unknown option --no-such-option"),
    ],
)
def test_install_collector_refuses_bad_input(
    args: list[str], message: str, empty_root: Path
) -> None:
    result = run_script("install-collector.sh", *args, "--root", str(empty_root))
    assert result.returncode != 0
    assert message in result.stderr
    assert list(empty_root.iterdir()) == []


@pytest.fixture
def public_deploy() -> Iterator[Path]:
    """A copy of deploy/ that any user can read, wherever the checkout is."""
    path = Path(tempfile.mkdtemp(prefix="netsonde-deploy-scripts-"))
    path.chmod(0o755)
    for name in ("install-agent.sh", "install-collector.sh", "install-common.sh"):
        shutil.copy(DEPLOY / name, path / name)
        (path / name).chmod(0o644)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize(
    ("script", "args"),
    [("install-agent.sh", ["--collector", URL]), ("install-collector.sh", [])],
)
def test_the_scripts_refuse_to_run_as_a_normal_user(
    script: str, args: list[str], public_deploy: Path
) -> None:
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "bash", str(public_deploy / script), *args],
        capture_output=True, text=True, timeout=60, check=False, cwd="/", env=script_env(),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "must be run as root" in result.stderr


@pytest.mark.parametrize("script", ["install-agent.sh", "install-collector.sh"])
def test_help(script: str) -> None:
    result = run_script(script, "--help")
    assert result.returncode == 0
    assert "--root DIR" in result.stdout
    assert "--no-systemd" in result.stdout


def test_nginx_example_forwards_what_the_collector_needs() -> None:
    conf = (DEPLOY / "nginx-netsonde.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "server 127.0.0.1:8080;" in conf
    # Above the collector's 4 MiB batch limit, or nginx refuses big uploads with 413.
    assert "client_max_body_size 5m;" in conf
    assert conf.count("{") == conf.count("}")
