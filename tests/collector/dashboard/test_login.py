"""The operator's login: the token from `operator-token create` as a strict cookie, checked
as the API checks it, and the agent health page behind it."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from collector.dashboard.session import COOKIE, MAX_FORM
from collector.web.keys import STORAGE
from tests.collector.dashboard.site import site

HEALTH = "/operator/agents"


def new_token(s_client: object) -> str:
    storage = s_client.app[STORAGE]  # type: ignore[attr-defined]
    _, token = storage.create_operator_token("test", int(time.time() * 1000))
    return str(token)


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}"}


@pytest.mark.asyncio
async def test_agent_health_needs_the_operator(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        response = await s.client.get(HEALTH)
        body = await response.text()
        assert response.status == 401
        assert 'href="/login"' in body
        assert s.agent_id not in body
        assert response.headers["Cache-Control"] == "no-store"
        assert "Log out" not in body


@pytest.mark.asyncio
async def test_login_sets_a_strict_cookie_that_opens_agent_health(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        token = new_token(s.client)
        response = await s.client.post("/login", data={"token": token}, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == HEALTH
        set_cookie = response.headers["Set-Cookie"]
        assert set_cookie.startswith(f"{COOKIE}={token};")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"):
            assert attribute in set_cookie
        assert "Secure" not in set_cookie  # plain HTTP: a Secure cookie would not come back
        health = await s.client.get(HEALTH, headers=cookie(token))
        body = await health.text()
        assert health.status == 200
        assert s.agent_id in body
        assert "test" in body
        assert ">online<" in body
        assert health.headers["Cache-Control"] == "no-store"
        assert "Log out" in body
        assert 'class="operator"' in body
        # Public pages rendered for the operator are not cached either.
        overview = await s.client.get("/", headers=cookie(token))
        assert overview.headers["Cache-Control"] == "no-store"


@pytest.mark.asyncio
async def test_a_bad_token_is_refused_and_sets_nothing(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        for token in ("op-000000000000." + "0" * 64, "not a token"):
            response = await s.client.post("/login", data={"token": token}, allow_redirects=False)
            assert response.status == 401
            assert "Set-Cookie" not in response.headers
            assert 'role="alert"' in await response.text()
        oversized = await s.client.post("/login", data={"token": "x" * MAX_FORM})
        assert oversized.status == 400
        assert (await s.client.post("/login", data={"other": "1"})).status == 400


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
     {"Sec-Fetch-Site": "same-site"}],
)  # fmt: skip
async def test_login_and_logout_come_only_from_this_origin(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with site(tmp_path) as s:
        token = new_token(s.client)
        response = await s.client.post(
            "/login", data={"token": token}, headers=headers, allow_redirects=False
        )
        assert response.status == 403
        assert "Set-Cookie" not in response.headers
        logout = await s.client.post("/logout", headers=headers | cookie(token))
        assert logout.status == 403


@pytest.mark.asyncio
async def test_logout_is_post_only_and_drops_the_cookie(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        token = new_token(s.client)
        assert (await s.client.get("/logout")).status == 405
        origin = f"http://{s.client.host}:{s.client.port}"
        response = await s.client.post(
            "/logout", headers=cookie(token) | {"Origin": origin}, allow_redirects=False
        )
        assert response.status == 303
        assert response.headers["Location"] == "/"
        assert response.cookies[COOKIE].value == ""
        assert response.cookies[COOKIE]["max-age"] == "0"


@pytest.mark.asyncio
async def test_a_revoked_or_unknown_token_ends_the_session(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        token = new_token(s.client)
        token_id = token.split(".")[0]
        s.client.app[STORAGE].revoke_operator_token(token_id, int(time.time() * 1000))
        for stale in (token, "op-000000000000." + "0" * 64, "garbage"):
            response = await s.client.get(HEALTH, headers=cookie(stale))
            body = await response.text()
            assert response.status == 401
            assert "session has ended" in body
            assert s.agent_id not in body
            assert response.cookies[COOKIE]["max-age"] == "0"
            public = await s.client.get("/", headers=cookie(stale))
            assert public.status == 200
            assert "session has ended" in await public.text()
        bearer = await s.client.get(HEALTH, headers={"Authorization": f"Bearer {token}"})
        assert bearer.status == 401  # a bad Bearer token is a 401, as in the API


@pytest.mark.asyncio
async def test_the_cookie_is_secure_behind_a_trusted_https_proxy(tmp_path: Path) -> None:
    proxies = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    async with site(tmp_path, trusted_proxies=proxies) as s:
        token = new_token(s.client)
        forwarded = {"X-Forwarded-Proto": "https"}
        response = await s.client.post(
            "/login", data={"token": token}, headers=forwarded, allow_redirects=False
        )
        assert "Secure" in response.headers["Set-Cookie"]
    (tmp_path / "untrusted").mkdir()
    async with site(tmp_path / "untrusted") as s:
        token = new_token(s.client)
        response = await s.client.post(
            "/login", data={"token": token}, headers=forwarded, allow_redirects=False
        )
        assert "Secure" not in response.headers["Set-Cookie"]
