"""Security: the read API names no agent to the public (issue 21, volunteer exposure).

Before the fix ``/api/v1/agents`` listed operator-chosen names and last-seen times,
``/measurements`` and ``/outages`` tied each agent id to its network and times, and
``/metrics`` was open: enough for a censoring state to learn which networks host
volunteers and when they are active. Now those need the operator's bearer token (made by
``netsonde-collector operator-token create``); the public answers carry no agent id. Real
app, real storage, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.paths import (
    AGENTS_PATH,
    BLOCKING_PATH,
    MEASUREMENTS_PATH,
    METRICS_PATH,
    OUTAGES_PATH,
    TIMELINE_PATH,
)
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.web.keys import STORAGE
from collector.web.operator import OPERATOR_TOKENS
from tests import REPO
from tests.collector.app_client import MSGPACK, enrolled, recent, running
from tests.collector.storage.conftest import pg_url as pg_url
from tests.collector.storage.conftest import storage_url as storage_url

Client = TestClient[web.Request, web.Application]
OPERATOR_ONLY = (AGENTS_PATH, METRICS_PATH)
PUBLIC = (BLOCKING_PATH, TIMELINE_PATH, MEASUREMENTS_PATH, OUTAGES_PATH)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *argv],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _uploaded(client: Client) -> str:
    """An agent with measurements and connectivity checks, one of them offline."""
    agent_id, key = await enrolled(client)
    now = int(time.time() * 1000)
    checks = [(now - 600_000 + i * 60_000, i not in (4, 5)) for i in range(9)]
    batch = encode_batch(agent_id, 1, recent(3), key, checks=checks)
    response = await client.post(MEASUREMENTS_PATH, data=batch, headers=MSGPACK)
    assert response.status == 200, await response.text()
    return agent_id


@pytest.mark.asyncio
async def test_the_cli_token_opens_the_agent_routes_and_nothing_else_does(
    storage_url: str,
) -> None:
    created = cli("operator-token", "create", "--name", "dashboard", "--db", storage_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[0]
    token_id, secret = token.split(".")
    # Only the hash is stored: the secret is nowhere in the database.
    async with running(Settings(db_url=storage_url)) as client:
        stored = client.app[STORAGE].operator_token(token_id)
        assert stored is not None
        assert secret.encode() not in stored.secret_hash
        agent_id = await _uploaded(client)
        wrong = [
            {},
            bearer(f"{token_id}.{'0' * len(secret)}"),
            bearer(f"op-000000000000.{secret}"),
            bearer(secret),
            {"Authorization": f"Basic {token}"},
            {"Authorization": "Bearer"},
            bearer(token + "x" * 200),
        ]
        for path in OPERATOR_ONLY:
            for headers in wrong:
                response = await client.get(path, headers=headers)
                assert response.status == 401, (path, headers)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await response.json())["reason"] == "operator_token"
            assert (await client.get(path, headers=bearer(token))).status == 200
        agents = await (await client.get(AGENTS_PATH, headers=bearer(token))).json()
        assert [a["id"] for a in agents["agents"]] == [agent_id]
        # Where the token adds to the answer, a bad one is refused, not served as public.
        for path in (MEASUREMENTS_PATH, OUTAGES_PATH):
            assert (await client.get(path, headers=wrong[1])).status == 401, path

    listed = cli("operator-token", "list", "--db", storage_url)
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout
    assert "dashboard" in listed.stdout
    assert secret not in listed.stdout
    revoked = cli("operator-token", "revoke", token_id, "--db", storage_url)
    assert revoked.returncode == 0, revoked.stderr
    assert cli("operator-token", "revoke", "op-000000000000", "--db", storage_url).returncode == 1
    async with running(Settings(db_url=storage_url)) as client:
        response = await client.get(AGENTS_PATH, headers=bearer(token))
        assert (response.status, (await response.json())["error"]) == (
            401,
            "this operator token has been revoked",
        )


@pytest.mark.asyncio
async def test_public_answers_carry_no_agent_identifier(storage_url: str) -> None:
    async with running(Settings(db_url=storage_url)) as client:
        agent_id = await _uploaded(client)
        _, token = client.app[STORAGE].create_operator_token("t", int(time.time() * 1000))
        for path in PUBLIC:
            public = await client.get(path)
            assert public.status == 200, await public.text()
            assert agent_id not in await public.text(), path
        measurements = (await (await client.get(MEASUREMENTS_PATH)).json())["measurements"]
        assert len(measurements) == 3
        assert not {"agent_id", "received_ms"} & {k for m in measurements for k in m}
        outages = (await (await client.get(OUTAGES_PATH)).json())["outages"]
        assert [(o["kind"], o["agent_count"], "agents" in o) for o in outages] == [
            ("offline", 1, False)
        ]
        # The operator sees who: the same routes, with the token.
        full = await (await client.get(MEASUREMENTS_PATH, headers=bearer(token))).json()
        assert {m["agent_id"] for m in full["measurements"]} == {agent_id}
        ours = await (await client.get(OUTAGES_PATH, headers=bearer(token))).json()
        assert [o["agents"] for o in ours["outages"]] == [[agent_id]]
        # One agent's outages are its volunteer's offline hours: the operator's alone.
        refused = await client.get(OUTAGES_PATH, params={"agent": agent_id})
        assert refused.status == 401
        assert agent_id not in await refused.text()
        one = await client.get(OUTAGES_PATH, params={"agent": agent_id}, headers=bearer(token))
        assert len((await one.json())["outages"]) == 1
        for path in OPERATOR_ONLY:
            response = await client.get(path)
            assert response.status == 401
            assert agent_id not in await response.text()


@pytest.mark.asyncio
async def test_verified_tokens_are_cached_briefly_then_read_again(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        storage = client.app[STORAGE]
        # The app's own cache, with a TTL a test can wait out (30 s in service).
        client.app[OPERATOR_TOKENS].ttl = 0.3
        token_id, token = storage.create_operator_token("t", int(time.time() * 1000))
        assert (await client.get(AGENTS_PATH, headers=bearer(token))).status == 200
        assert storage.revoke_operator_token(token_id, int(time.time() * 1000))
        # Within the TTL the dashboard's requests are answered from memory...
        for _ in range(5):
            assert (await client.get(AGENTS_PATH, headers=bearer(token))).status == 200
        await asyncio.sleep(0.4)
        # ...and the revocation bites once it has passed.
        assert (await client.get(AGENTS_PATH, headers=bearer(token))).status == 401
