"""Collector web layer: the operator credential, and the routes only an operator may read.

Everything that names an agent or follows one over time is the operator's: the agent list
(operator-chosen names such as "pi-lahore-1", last-seen times), the agent id on each stored
measurement, per-agent outages, and the Prometheus metrics. Served to anyone, they told a
censoring state which networks host volunteers and when they are active (security audit,
issue 21; docs/threat-model.md). The public read API answers at network granularity.

A request shows the credential as ``Authorization: Bearer <id>.<secret>`` (a token from
``netsonde-collector operator-token create``). :func:`is_operator` says whether it did,
refusing a malformed, unknown or revoked token with a 401 rather than answering as to the
public, so a dashboard with a stale token fails loudly. Tokens are read from the database
at most every :data:`CACHE_S` seconds per token id (``collector.control.ControlCache``, as
the agents' keys), so a revocation takes that long to bite; the secret is compared in
constant time on every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST

from agent.api.paths import AGENTS_PATH, METRICS_PATH
from collector.control import ControlCache
from collector.errors import ApiError
from collector.storage.operators import OperatorToken, secret_matches, split_token
from collector.web.errors import OPERATOR_REASON
from collector.web.keys import METRICS, STORAGE
from collector.web.params import check_query

__all__ = [
    "OPERATOR_TOKENS",
    "check_token",
    "install",
    "is_operator",
    "operator_only",
    "require_operator",
]

CACHE_S = 30.0
# Ids cached, known or not, the least recently used going first: a client trying made-up
# ids costs a database read each, as any query does, and no memory; and at most this many
# reads at once, so it cannot take every storage thread.
MAX_CACHED = 1024
LOOKUPS = 4

routes = web.RouteTableDef()


# Operator tokens by id as read a moment ago, None for an id that has none.
OPERATOR_TOKENS: web.AppKey[ControlCache[str, OperatorToken | None]] = web.AppKey("operator_tokens")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, OPERATOR_REASON)


async def is_operator(request: web.Request) -> bool:
    """True for a valid operator token, False for none; a 401 for a bad one."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or split_token(credentials.strip()) is None:
        raise _unauthorized("'Authorization' must be 'Bearer' and an operator token")
    await check_token(request, credentials.strip())
    return True


async def check_token(request: web.Request, credential: str) -> None:
    """A 401 unless ``credential`` is a valid operator token: the one check of it, whether it
    came as a Bearer header or as the dashboard's session cookie."""
    parts = split_token(credential)
    if parts is None:
        raise _unauthorized("not an operator token")
    token_id, secret = parts
    storage = request.app[STORAGE]
    token, _ = await request.app[OPERATOR_TOKENS].get(
        token_id, lambda: asyncio.to_thread(storage.operator_token, token_id)
    )
    # One answer for an unknown id and a wrong secret: which ids exist is not told.
    if token is None or not secret_matches(token, secret):
        raise _unauthorized("unknown operator token")
    if token.revoked_ms is not None:
        raise _unauthorized("this operator token has been revoked")


def operator_only(what: str) -> ApiError:
    """The 401 for ``what`` asked without the operator's token."""
    return _unauthorized(
        f"{what} is for the collector's operator: send 'Authorization: Bearer TOKEN' with "
        "a token from `netsonde-collector operator-token create`"
    )


async def require_operator(request: web.Request) -> None:
    if not await is_operator(request):
        raise operator_only("this route")


@routes.get(AGENTS_PATH, allow_head=False)
async def list_agents(request: web.Request) -> web.Response:
    await require_operator(request)
    check_query(request.query, frozenset())
    summaries = await request.app[STORAGE].agent_summaries_async()
    return web.json_response(
        {
            "agents": [
                {
                    "id": s.id,
                    "name": s.name,
                    "created_ms": s.created_ms,
                    "revoked_ms": s.revoked_ms,
                    "last_seen_ms": s.last_seen_ms,
                    "key_fingerprint": s.key_fingerprint,
                    # As the agent's last accepted batch said (None: not said).
                    "last_batch_ms": s.last_batch_ms,
                    **s.status._asdict(),
                }
                for s in summaries
            ]
        }
    )


@routes.get(METRICS_PATH)
async def serve_metrics(request: web.Request) -> web.Response:
    """The text exposition format. The Content-Type is set as a header, whole, because it
    carries a version parameter aiohttp's content_type would not take."""
    await require_operator(request)
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _token_cache(app: web.Application) -> AsyncIterator[None]:
    cache: ControlCache[str, OperatorToken | None] = ControlCache(
        ttl=CACHE_S, max_entries=MAX_CACHED, max_concurrent=LOOKUPS
    )
    app[OPERATOR_TOKENS] = cache
    yield
    await cache.close()


def install(app: web.Application) -> None:
    """The operator's routes and token cache, on ``app``; after the storage's context."""
    app.cleanup_ctx.append(_token_cache)
    app.router.add_routes(routes)
