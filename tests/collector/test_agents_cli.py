"""`netsonde-collector enroll` and `agents list|revoke`: a printed token the API accepts."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.paths import ENROLL_PATH
from agent.wire.keys import fingerprint, public_key_bytes
from collector.config import Settings
from tests import REPO
from tests.collector.app_client import running


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.asyncio
async def test_enrol_list_and_revoke(storage_url: str) -> None:
    done = cli("enroll", "--name", "pk-lahore-1", "--db", storage_url, "--ttl", "2")
    assert done.returncode == 0, done.stderr
    token, expiry = done.stdout.splitlines()
    assert expiry.startswith("expires ")
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(public_key_bytes(key)).decode()
    async with running(Settings(db_url=storage_url)) as client:
        response = await client.post(ENROLL_PATH, json={"token": token, "public_key": public})
        assert response.status == 201, await response.text()
        agent_id = (await response.json())["agent_id"]

    listed = cli("agents", "list", "--db", storage_url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(agent_id))
    assert "pk-lahore-1" in row
    assert fingerprint(key) in row
    assert row.endswith("-")

    revoked = cli("agents", "revoke", agent_id, "--db", storage_url)
    assert revoked.returncode == 0, revoked.stderr
    listed = cli("agents", "list", "--db", storage_url)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(agent_id))
    assert not row.endswith("-")

    unknown = cli("agents", "revoke", "ag-000000000000", "--db", storage_url)
    assert unknown.returncode == 1
    assert "no agent" in unknown.stderr


def test_bad_db_and_ttl_exit_2() -> None:
    assert cli("enroll", "--name", "x", "--db", "mysql://x/y").returncode == 2
    assert cli("enroll", "--name", "x", "--db", "sqlite:///x.db", "--ttl", "0").returncode == 2


def test_help_stays_light() -> None:
    code = (
        "import sys; from collector.cli import main\n"
        "for argv in (['enroll', '--help'], ['agents', 'list', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "assert not {'aiohttp', 'sqlalchemy', 'cryptography'} & set(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--ttl" in done.stdout
