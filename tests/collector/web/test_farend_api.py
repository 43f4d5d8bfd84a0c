"""``POST /api/v1/farend``: enrolled agents, and only they, get where the far end is and a token
for it; the far end runs beside the API and reports its refusals to ``/metrics``; the agent's
client and throttle test use the answer as they would in the field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.auth import Credential, signed_headers
from agent.api.farend import FAREND_UNAUTHENTICATED, FarendClient
from agent.api.paths import FAREND_PATH
from agent.model.farend import FarendTicket
from agent.model.measurement import Target
from agent.net.tcp import connect
from agent.net.transfer import download
from agent.probes.throttle import ThrottlePlan
from agent.throttle import ThrottleConfig, measure_throttle
from collector.config import Settings
from collector.farend.config import FarendConfig
from collector.web.keys import FAREND
from tests.collector.app_client import enrolled, running
from tests.collector.web.test_metrics import scrape, value

pytestmark = pytest.mark.asyncio
Client = TestClient[web.Request, web.Application]


def settings(tmp_path: Path, **farend: object) -> Settings:
    config = FarendConfig(
        host="127.0.0.1",
        state_dir=tmp_path,
        tls_port=0,
        http_port=0,
        udp_port=0,
        **farend,  # type: ignore[arg-type]
    )
    return Settings(db_url=f"sqlite:///{tmp_path}/c.db", farend=config)


async def ask(client: Client, credential: Credential | None) -> tuple[int, dict[str, object]]:
    headers = signed_headers(credential, "POST", FAREND_PATH, b"{}") if credential else {}
    response = await client.post(FAREND_PATH, data=b"{}", headers=headers)
    return response.status, await response.json()


async def test_only_enrolled_agents_get_a_ticket(tmp_path: Path) -> None:
    async with running(settings(tmp_path, targets=("x.com",))) as client:
        status, body = await ask(client, None)
        assert status == 401
        assert "enrolled agents" in str(body["error"])
        stranger = Credential("nobody", Ed25519PrivateKey.generate())
        assert (await ask(client, stranger))[0] == 401
        agent_id, key = await enrolled(client)
        status, ticket = await ask(client, Credential(agent_id, key))
        assert status == 200
        service = client.app[FAREND]
        assert ticket["host"] == "127.0.0.1"  # where this agent reached the API
        ports = (ticket["tls_port"], ticket["http_port"], ticket["udp_port"])
        assert ports == (service.ports.tls, service.ports.http, service.ports.udp)
        assert 0 not in ports
        assert service.signer.verify(str(ticket["token"])) == agent_id
        assert ticket["targets"] == ["x.com"]


async def test_the_served_lists_throttle_categories_are_targets_too(tmp_path: Path) -> None:
    served = tmp_path / "list.csv"
    served.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        "https://social.example/,GRP,Social Networking,2024-01-01,x,\n"
        "https://news.example/,NEWS,News Media,2024-01-01,x,\n"
        "http://chat.example/,comt,Communication Tools,2024-01-01,x,\n"
    )
    base = settings(tmp_path, targets=("https://x.com/",))
    async with running(dataclasses.replace(base, testlist=str(served))) as client:
        agent_id, key = await enrolled(client)
        _, ticket = await ask(client, Credential(agent_id, key))
        assert ticket["targets"] == [
            "https://x.com/",
            "https://social.example/",
            "http://chat.example/",
        ]


async def test_without_a_far_end_the_answer_is_404(tmp_path: Path) -> None:
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db")) as client:
        agent_id, key = await enrolled(client)
        status, body = await ask(client, Credential(agent_id, key))
        assert status == 404
        assert "no far end" in str(body["error"])


async def test_the_far_end_counts_its_refusals_in_metrics(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as client:
        port = client.app[FAREND].ports.http
        _, stream = await connect("127.0.0.1", port)
        assert stream is not None
        refused = await download(stream, "x.com", "not-a-token", 1000, window=1, timeout=5)
        assert refused.status == 401
        agent_id, key = await enrolled(client)
        _, ticket = await ask(client, Credential(agent_id, key))
        _, stream = await connect("127.0.0.1", port)
        assert stream is not None
        moved = await download(stream, "x.com", str(ticket["token"]), 5000, window=1, timeout=5)
        assert moved.bytes == 5000
        samples = await scrape(client)
        assert value(samples, "netsonde_farend_refusals_total", reason="token") == 1
        assert value(samples, "netsonde_farend_refusals_total", reason="cap") == 0
        assert value(samples, "netsonde_farend_bytes_total", direction="down") == 5000


async def test_the_agents_client_and_throttle_test_use_the_ticket(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as client:
        agent_id, key = await enrolled(client)
        url = str(client.make_url("/"))
        async with FarendClient(url, credential=None) as anonymous:
            assert await anonymous.ticket() == FAREND_UNAUTHENTICATED
        async with FarendClient(url, credential=Credential(agent_id, key)) as farend:
            ticket = await farend.ticket()
        assert isinstance(ticket, FarendTicket)
        plan = ThrottlePlan(down_bytes=64 * 1024, up_bytes=32 * 1024, window=0.3, timeout=5)
        config = ThrottleConfig(benign_name="example.com", plan=plan)
        for url_ in ("https://x.com/", "http://x.com/"):
            m = await measure_throttle(Target.parse(url_), ticket, config)
            assert m.throttle is not None
            assert m.throttle.trigger == ("sni" if url_.startswith("https") else "host")
            assert m.verdict.verdict == "ok", json.dumps(m.verdict.evidence)
        down = await measure_throttle(Target.parse("x.com"), "farend_http_404", config)
        assert (down.verdict.verdict, down.verdict.evidence["failure"]) == (
            "inconclusive",
            "farend_http_404",
        )
