"""Collector dashboard: the operator's login, a cookie holding the operator token.

A browser cannot send the API's ``Authorization: Bearer`` header when it follows a link, so
the operator pastes a token from ``netsonde-collector operator-token create`` into the form
at ``/login``; the collector checks it exactly as the API does
(``collector.web.operator.check_token``: one credential, revocable, compared in constant
time) and sets it as a cookie: HttpOnly (no script reads it; the pages run none anyway),
SameSite=Strict (no other site's page or link sends it, which with login and logout being
POST only is the CSRF defence), Secure over HTTPS, for 12 hours. Every request with the
cookie is checked again, so a revoked token stops working within the token cache's 30 s.
A POST whose Origin or Sec-Fetch-Site says it came from another site is refused too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from collector.errors import ApiError
from collector.web.keys import SETTINGS
from collector.web.operator import check_token, is_operator

__all__ = ["COOKIE", "SESSION_S", "Viewer", "check_same_origin", "log_in", "log_out", "viewer"]

COOKIE = "netsonde_operator"
SESSION_S = 12 * 3600
MAX_FORM = 1024  # a token is 80 characters; the form holds nothing else


@dataclass(frozen=True)
class Viewer:
    """Who a page is for: the public, or the operator; ``ended`` when a session cookie came
    that is no longer valid (revoked, or not a token): the page says so and drops it."""

    operator: bool
    ended: bool = False


async def viewer(request: web.Request) -> Viewer:
    """The operator if the request carries a valid token, as a Bearer header (a 401 if that
    one is bad, as in the API) or as the session cookie."""
    if await is_operator(request):
        return Viewer(operator=True)
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return Viewer(operator=False)
    try:
        await check_token(request, cookie)
    except ApiError:
        return Viewer(operator=False, ended=True)
    return Viewer(operator=True)


def _secure(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS: directly, or through a trusted proxy
    that says so (the proxies of ``--trusted-proxy``, as for client addresses)."""
    if request.secure:
        return True
    if request.headers.get("X-Forwarded-Proto", "").lower() != "https" or not request.remote:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    proxies = request.app[SETTINGS].trusted_proxies
    return any(peer.version == net.version and peer in net for net in proxies)


def check_same_origin(request: web.Request) -> None:
    """A 403 for a form posted from another site (SameSite=Strict already keeps the cookie
    from such a request; this also stops a forced login or logout)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise ApiError(403, "this form must be sent from the collector's own pages")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "this form must be sent from the collector's own pages")


async def submitted_token(request: web.Request) -> str:
    """The ``token`` field of the login form, bounded; a 400 for anything else."""
    if request.content_length is None or request.content_length > MAX_FORM:
        raise ApiError(400, f"the login form must be at most {MAX_FORM} bytes")
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ApiError(400, "paste an operator token into the form")
    return token.strip()


def log_in(response: web.StreamResponse, request: web.Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_S,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )


def log_out(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", samesite="Strict")
