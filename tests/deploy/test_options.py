"""The install scripts' options: bad input refused before anything changes, a normal user
refused, --help; and the nginx example. Nothing is installed.

Needs root (as the other deploy tests). A normal user gets a skip saying so; under CI=true
that is a failure.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.scripts import DEPLOY, run_script, script_env


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
    (["--collector", URL, "--token-file", "/nonexistent"], {}, "not a readable file"),
    (["--collector", URL, "--token-file", "TWO"], {}, "not an enrolment token"),
    (["--collector", URL, "--token-file", "-"], {}, "nothing on standard input"),
    (["--collector", URL, "--token", "t", "--token-file", "-"], {}, "give one of them"),
    # Still accepted, with a warning; here the bad URL stops it.
    (["--collector", "ftp://example.org", "--token", "t"], {}, "other users can read it"),
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
    tmp_path: Path,
) -> None:
    two = tmp_path / "two-words.token"
    two.write_text("two words\n")
    args = [str(two) if a == "TWO" else a for a in args]
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
