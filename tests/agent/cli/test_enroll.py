"""``netsonde-agent enroll``: the token comes from a file or standard input, never the command
line, where other users of the machine could read it (ps); ``--token`` still works, with a
warning saying so. Run as a subprocess; the enrolment itself against the real collector app
on loopback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.daemon.enrollment import read_state
from tests import REPO
from tests.agent.daemon.loopback import collector, token

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the attempt fails at once
WARNING = "--token is visible to other users"


def enroll(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "enroll", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.asyncio
async def test_enrols_with_the_token_on_standard_input_or_in_a_file(tmp_path: Path) -> None:
    async with collector(tmp_path, "/nonexistent") as server:
        url = str(server.make_url("")).rstrip("/")
        argv = [sys.executable, "-m", "agent.cli", "enroll", "--collector", url]
        for way, state_dir in (("-", tmp_path / "a"), ("file", tmp_path / "b")):
            secret = token(server)
            source = way
            if way == "file":
                source = str(tmp_path / "token.txt")
                Path(source).write_text(f"  {secret}\n")
            process = await asyncio.create_subprocess_exec(
                *argv, "--token-file", source, "--state-dir", str(state_dir),
                cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate(f"{secret}\n".encode() if way == "-" else b"")
            assert process.returncode == 0, err.decode()
            assert b"enrolled as ag-" in out
            assert WARNING.encode() not in err
            assert read_state(state_dir).collector == url


def test_the_token_on_the_command_line_still_works_with_a_warning(tmp_path: Path) -> None:
    result = enroll("--collector", CLOSED, "--token", "t0ken", "--state-dir", str(tmp_path))
    assert result.returncode == 1  # read, then refused by nobody: the collector is not there
    assert WARNING in result.stderr
    assert "cannot reach the collector" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--token-file", "/nonexistent/token"], "", "cannot read it"),
        (["--token-file", "-"], "", "no enrolment token there"),
        (["--token-file", "-"], "two words\n", "no enrolment token there"),
        (["--token-file", "-", "--token", "t"], "", "not allowed with argument"),
        ([], "", "one of the arguments --token-file --token is required"),
    ],
)
def test_a_missing_or_bad_token_is_a_usage_error(
    tmp_path: Path, args: list[str], stdin: str, message: str
) -> None:
    result = enroll("--collector", CLOSED, "--state-dir", str(tmp_path), *args, stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "agent.key").exists()
