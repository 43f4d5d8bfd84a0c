"""Collector web layer: the agents' routes and the service routes, as a route table.

``/api/v1/health``, ``/control``, ``/enroll``, ``POST /measurements``, ``/testlist`` and
``/fingerprints``
(``/metrics`` is the operator's: ``collector.web.operator``). Handlers only parse the
request, call into ``collector.control`` (the cache), ``collector.ingest`` or the storage,
and shape the answer; a bad request raises :class:`collector.errors.ApiError`, which
``collector.web.errors`` renders.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.api.auth import AuthError, claimed_agent, verify_request
from agent.api.paths import (
    CACHE_HEADER,
    CONTROL_PATH,
    ENROLL_PATH,
    FINGERPRINTS_PATH,
    HEALTH_PATH,
    MAX_ADDRESSES,
    MEASUREMENTS_PATH,
    MSGPACK,
    TESTLIST_PATH,
)
from agent.model.addresses import IPNetwork, is_address
from agent.model.measurement import Target, TargetError
from agent.wire.keys import IdentityError, public_key_from_bytes
from collector import __version__
from collector.control import control_target, measurable
from collector.enrich import client_address
from collector.errors import ApiError
from collector.ingest.accept import enroll, ingest
from collector.storage import Storage
from collector.web.keys import (
    AGENT_KEYS,
    CONTROL_LIMITER,
    CONTROLS,
    ENRICHER,
    FINGERPRINTS,
    INGEST_THREADS,
    LIMITER,
    MEASURE,
    METRICS,
    SETTINGS,
    STORAGE,
    TESTLIST,
)

routes = web.RouteTableDef()
_READ_CHUNK = 64 * 1024


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:  # JSON syntax, or a body that is not UTF-8
        raise bad_request("the body must be JSON") from None


@routes.get(HEALTH_PATH)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "version": __version__})


def parse_control_request(
    data: Any, allowed: Sequence[IPNetwork]
) -> tuple[Target, tuple[str, ...]]:
    """``{"url": str, "addresses": [ip, ...]}`` -> the target to measure (without its query,
    ``collector.control.control_target``) and the addresses to measure.

    A URL naming an address the collector must not reach (its own host or LAN, a metadata
    service) is refused; such addresses in the list are dropped, not refused: an agent
    legitimately forwards a bogon its resolver handed it.
    """
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    url = data.get("url")
    if not isinstance(url, str):
        raise bad_request("'url' must be a string")
    try:
        target = control_target(Target.parse(url))
    except TargetError as exc:
        raise bad_request(f"'url': {exc}") from None
    if is_address(target.host) and not measurable(target.host, allowed):
        # Host only, never the port: the answer must not tell an open port from a closed one.
        raise bad_request(f"'url': {target.host} may not be measured: not a public address")
    raw = data.get("addresses", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise bad_request("'addresses' must be a list of IP address strings")
    if len(raw) > MAX_ADDRESSES:
        raise bad_request(f"'addresses' may list at most {MAX_ADDRESSES} IPs")
    addresses = set()
    for text in raw:
        try:
            addresses.add(str(ipaddress.ip_address(text)))
        except ValueError:
            raise bad_request(f"'addresses': {text!r} is not an IP address") from None
    return target, tuple(sorted(a for a in addresses if measurable(a, allowed)))


def _active_key(storage: Storage, agent_id: str) -> Ed25519PublicKey | None:
    """The key of an enrolled, unrevoked agent, else None; blocks (a storage thread's job)."""
    agent = storage.get_agent(agent_id)
    if agent is None or agent.revoked_ms is not None:
        return None
    try:
        return public_key_from_bytes(agent.public_key)
    except IdentityError:
        return None


async def signed_body(request: web.Request) -> tuple[str, bytes]:
    """The agent that signed this request and its body (at most ``client_max_size``, else
    413); 401 unless an enrolled, unrevoked agent signed exactly this request, now."""
    try:
        agent_id = claimed_agent(request.headers)
        loop = asyncio.get_running_loop()
        threads, storage = request.app[INGEST_THREADS], request.app[STORAGE]
        key, _ = await request.app[AGENT_KEYS].get(
            agent_id, lambda: loop.run_in_executor(threads, _active_key, storage, agent_id)
        )
        if key is None:
            raise AuthError(f"agent {agent_id!r} is not enrolled here, or was revoked")
        body = await request.read()
        verify_request(request.headers, request.method, request.path, body, key)
    except AuthError as exc:
        raise ApiError(401, str(exc), "auth") from None
    return agent_id, body


@routes.post(CONTROL_PATH)
async def control(request: web.Request) -> web.Response:
    """A signed JSON request -> the control's msgpack Vantage; 401 for anyone but an enrolled
    agent, 429 past its rate, 504 past the measurement's deadline."""
    agent_id, body = await signed_body(request)
    if wait := request.app[CONTROL_LIMITER].check(agent_id):
        raise ApiError(429, "too many control requests from this agent; slow down", "rate", wait)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # syntax, not UTF-8, or nested thousands deep
        raise bad_request("the body must be JSON") from None
    target, addresses = parse_control_request(data, request.app[SETTINGS].allowed_networks)
    measure = request.app[MEASURE]
    try:
        answer, cache = await request.app[CONTROLS].get(
            (target.url, addresses), lambda: measure(target, addresses)
        )
    except TimeoutError:
        deadline = request.app[SETTINGS].control_deadline
        raise ApiError(504, f"the control took over {deadline:g} s", "deadline") from None
    return web.Response(body=answer, content_type=MSGPACK, headers={CACHE_HEADER: cache})


@routes.post(ENROLL_PATH)
async def enroll_agent(request: web.Request) -> web.Response:
    """JSON ``{"token", "public_key"}`` -> 201 ``{"agent_id"}``; 400, 401 or 403 (ingest.enroll)."""
    agent_id = await enroll(request.app[STORAGE], await json_body(request))
    return web.json_response({"agent_id": agent_id}, status=201)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes: refused early by Content-Length, and while reading
    when there is none (chunked), so an oversized upload is never buffered whole."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the body is {request.content_length} bytes, at most {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(MEASUREMENTS_PATH)
async def upload_measurements(request: web.Request) -> web.Response:
    """A signed msgpack batch -> 200 ``{"stored": [id...], "duplicates": [id...], "checks": n}``
    (``n``: the batch's connectivity checks, all stored now, whether new or not)."""
    if request.content_type != MSGPACK:
        raise ApiError(415, f"the body must be a signed batch, {MSGPACK}")
    settings = request.app[SETTINGS]
    # Read past client_max_size, which stays small for the JSON routes, up to a batch.
    data = await read_body(request, settings.max_batch_request_bytes)
    # The address is looked up and dropped here: only the ASN and country are stored.
    network = request.app[ENRICHER].lookup(client_address(request, settings.trusted_proxies))
    result = await ingest(
        request.app[STORAGE],
        request.app[LIMITER],
        data,
        asn=network.asn,
        cc=network.cc,
        executor=request.app[INGEST_THREADS],
    )
    request.app[METRICS].count_measurements(len(result.stored), len(result.duplicates))
    request.app[METRICS].checks.inc(result.checks)
    # msgspec, as the query API: the stdlib encoder cost the event loop ~0.3 ms a batch.
    body = {"stored": result.stored, "duplicates": result.duplicates, "checks": result.checks}
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def _matches(request: web.Request, etag: str) -> bool:
    # Weak comparison (RFC 9110 13.1.2), as If-None-Match requires.
    wanted = request.if_none_match
    return wanted is not None and any(tag.value in (etag, "*") for tag in wanted)


@routes.get(TESTLIST_PATH)
async def get_testlist(request: web.Request) -> web.StreamResponse:
    """``{"urls", "count", "source"}``, or the CSV itself with ``?format=csv``."""
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("'format' must be json or csv")
    source = request.app.get(TESTLIST)
    if source is None:
        raise ApiError(404, "no test list is configured on this collector")
    current = await source.get()
    etag = f"{current.digest}-{fmt}"
    # Agents poll: let caches revalidate every time, which the ETag makes cheap.
    headers = {"Cache-Control": "no-cache"}
    if _matches(request, etag):
        response = web.Response(status=304, headers=headers)
    elif fmt == "csv":
        response = web.Response(
            body=current.csv, content_type="text/csv", charset="utf-8", headers=headers
        )
    else:
        body = {"urls": list(current.urls), "count": len(current.urls), "source": current.source}
        response = web.json_response(body, headers=headers)
    response.etag = etag
    return response


def _accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() == "gzip":
            weight = params.strip()
            if not weight.startswith("q="):
                return True
            try:
                return float(weight[2:]) > 0  # "q=0" is a refusal
            except ValueError:
                return False
    return False


@routes.get(FINGERPRINTS_PATH)
async def get_fingerprints(request: web.Request) -> web.Response:
    """The blockpage fingerprints as OONI CSV (``collector.fingerprints``), gzipped when the
    client accepts it; a header only when none are configured. Public: they name pages,
    not agents."""
    served = request.app[FINGERPRINTS]
    gzipped = _accepts_gzip(request)
    # Strong, and one per encoding (RFC 9110 8.8.3): the gzip bytes are another representation.
    etag = f"{served.digest}-gzip" if gzipped else served.digest
    headers = {"Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if _matches(request, etag):
        response = web.Response(status=304, headers=headers)
    else:
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        body = served.gzipped if gzipped else served.csv
        response = web.Response(
            body=body, content_type="text/csv", charset="utf-8", headers=headers
        )
    response.etag = etag
    return response
