"""Security: POST /api/v1/control serves enrolled agents only (issue 21).

Before the fix anyone could make the collector measure anything. Now a request must be
signed with the key of an enrolled, unrevoked agent, for this path and body, at about the
collector's time (agent.api.auth); anything else is a 401 JSON error before any work. The
good request runs a real control measurement of a loopback site the test allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.auth import AGENT_HEADER, Credential, signed_headers
from agent.api.control import HTTPControl
from agent.api.paths import CONTROL_PATH, MEASUREMENTS_PATH
from agent.model import failures
from agent.model.measurement import Target, Vantage
from collector.web.keys import STORAGE
from tests.security.test_control_harness import (
    World,
    listener,
    post_control,
    public_address,
    world,
)

Signer = Callable[[World], Callable[[bytes], dict[str, str]]]


def _forged(w: World) -> Callable[[bytes], dict[str, str]]:
    impostor = Credential(w.agent.agent_id, Ed25519PrivateKey.generate())
    return lambda body: signed_headers(impostor, "POST", CONTROL_PATH, body)


def _other_path(w: World) -> Callable[[bytes], dict[str, str]]:
    return lambda body: signed_headers(w.agent, "POST", MEASUREMENTS_PATH, body)


def _other_body(w: World) -> Callable[[bytes], dict[str, str]]:
    return lambda body: signed_headers(w.agent, "POST", CONTROL_PATH, body + b" ")


def _stale(w: World) -> Callable[[bytes], dict[str, str]]:
    ten_minutes_ago = int(time.time() * 1000) - 600_000
    return lambda body: signed_headers(w.agent, "POST", CONTROL_PATH, body, ten_minutes_ago)


def _unknown(w: World) -> Callable[[bytes], dict[str, str]]:
    stranger = Credential("a" * 32, Ed25519PrivateKey.generate())
    return lambda body: signed_headers(stranger, "POST", CONTROL_PATH, body)


def _unsigned_claim(w: World) -> Callable[[bytes], dict[str, str]]:
    return lambda body: {AGENT_HEADER: w.agent.agent_id}


REFUSED: dict[str, Signer] = {
    "bad signature": _forged,
    "another path": _other_path,
    "another body": _other_body,
    "stale time": _stale,
    "unknown agent": _unknown,
    "no signature": _unsigned_claim,
}


@pytest.mark.asyncio
async def test_without_a_credential_it_is_401_before_any_work(tmp_path: Path) -> None:
    host = public_address()
    async with listener(host) as site, world(tmp_path, {"site.test": [[host]]}) as w:
        response = await post_control(w.client, None, {"url": f"http://site.test:{site.port}/"})
        assert response.status == 401
        body = await response.json()
        assert body["reason"] == "auth"
        assert "enrolled agents" in body["error"]
        assert w.dns.queries == []
    assert site.connections == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_request_that_does_not_verify_is_401(tmp_path: Path, case: str) -> None:
    host = public_address()
    async with listener(host) as site, world(tmp_path, {"site.test": [[host]]}) as w:
        url = f"http://site.test:{site.port}/"
        response = await post_control(w.client, None, {"url": url}, sign=REFUSED[case](w))
        assert response.status == 401, await response.text()
        assert (await response.json())["reason"] == "auth"
        assert w.dns.queries == []
        # The same agent, signing properly, is served: the refusal was for the signature.
        assert (await post_control(w.client, w.agent, {"url": url})).status == 200
    assert site.connections == 1


@pytest.mark.asyncio
async def test_a_revoked_agent_is_401(tmp_path: Path) -> None:
    async with world(tmp_path, {}) as w:
        w.client.app[STORAGE].revoke_agent(w.agent.agent_id, int(time.time() * 1000))
        response = await post_control(w.client, w.agent, {"url": "http://site.test/"})
        assert response.status == 401
        assert "revoked" in (await response.json())["error"]


@pytest.mark.asyncio
async def test_an_enrolled_agent_gets_its_control_through_the_real_client(tmp_path: Path) -> None:
    host = public_address()
    async with listener(host) as site, world(tmp_path, {"site.test": [[host]]}) as w:
        collector = str(w.client.make_url("")).rstrip("/")
        async with HTTPControl(collector, timeout=5.0, credential=w.agent) as control:
            seen = await control.fetch(Target.parse(f"http://site.test:{site.port}/"), [])
    assert isinstance(seen, Vantage)
    assert [e.ip for e in seen.endpoints] == [host]
    assert site.requests == ["GET / HTTP/1.1"]


@pytest.mark.asyncio
async def test_without_a_credential_the_client_never_asks() -> None:
    async with listener("127.0.0.1") as collector:
        control = HTTPControl(f"http://127.0.0.1:{collector.port}", timeout=2.0)
        async with control:
            answer = await control.fetch(Target.parse("https://example.org/"), [])
    assert answer == failures.CONTROL_UNAUTHENTICATED
    assert collector.connections == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe{", b"[" * 30_000 + b"]" * 30_000])
async def test_a_signed_body_that_is_no_json_is_400(tmp_path: Path, body: bytes) -> None:
    async with world(tmp_path, {}) as w:
        headers = signed_headers(w.agent, "POST", CONTROL_PATH, body)
        response = await w.client.post(CONTROL_PATH, data=body, headers=headers)
        assert response.status == 400
        assert "must be JSON" in (await response.json())["error"]
