"""Collector web layer: the evidence routes.

``GET /api/v1/collector-key`` (public): the public half of the key that signs evidence
bundles, so that anyone can check a bundle against the key the collector publishes.
``GET /api/v1/evidence`` (operator only): the signed bundle for a query
(``collector.evidence.bundle``). A bundle cannot hide its agents: each batch's body names
its agent and is signed, so it cannot be changed without breaking the signature the bundle
exists to carry, and the keys and receive times would link an agent's batches anyway. So
it is the operator's to give to whom they choose (docs/design/007-evidence.md, "Who may
have a bundle").
"""

from __future__ import annotations

import asyncio
import tempfile

from aiohttp import web
from multidict import MultiMapping

from agent.api.paths import COLLECTOR_KEY_PATH, EVIDENCE_PATH
from collector.errors import ApiError
from collector.evidence.bundle import build_bundle
from collector.evidence.key import key_fingerprint, public_key_text
from collector.evidence.query import MAX_ASNS, EvidenceQuery, parse_query
from collector.web.keys import COLLECTOR_KEY, STORAGE
from collector.web.operator import require_operator
from collector.web.params import check_query

routes = web.RouteTableDef()

# Each parameter's longest value; asn may be given up to MAX_ASNS times, the others once.
_LIMITS = {"domain": 1024, "asn": 12, "since": 40, "until": 40}
_CHUNK = 256 * 1024


@routes.get(COLLECTOR_KEY_PATH, allow_head=False)
async def collector_key(request: web.Request) -> web.Response:
    check_query(request.query, frozenset())
    key = request.app[COLLECTOR_KEY]
    return web.json_response(
        {
            "algorithm": "ed25519",
            "public_key": public_key_text(key),
            "fingerprint": key_fingerprint(key),
        }
    )


def evidence_query(params: MultiMapping[str]) -> EvidenceQuery:
    """``domain``, ``asn`` (repeatable), ``since`` and ``until`` (required); 400 otherwise."""
    values: dict[str, list[str]] = {}
    for name, value in params.items():
        if name not in _LIMITS:
            raise ApiError(
                400, f"unknown parameter {name[:40]!r}; allowed: asn, domain, since, until"
            )
        if len(value) > _LIMITS[name]:
            raise ApiError(400, f"{name!r} is too long: at most {_LIMITS[name]} characters")
        values.setdefault(name, []).append(value)
    for name, given in values.items():
        if len(given) > (MAX_ASNS if name == "asn" else 1):
            raise ApiError(400, f"{name!r} is given too many times")
    if "since" not in values or "until" not in values:
        raise ApiError(400, "'since' and 'until' are required")
    try:
        return parse_query(
            values.get("domain", [""])[0] or None,
            values.get("asn", []),
            values["since"][0],
            values["until"][0],
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


@routes.get(EVIDENCE_PATH, allow_head=False)
async def evidence(request: web.Request) -> web.StreamResponse:
    await require_operator(request)
    query = evidence_query(request.query)
    storage, key = request.app[STORAGE], request.app[COLLECTOR_KEY]
    with tempfile.TemporaryFile() as spool:
        # Built whole first, on a worker thread: its id goes in a header, and a build
        # that fails must be a clean error, not half an archive.
        result = await asyncio.to_thread(build_bundle, storage, query, key, spool)
        size = spool.tell()
        spool.seek(0)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-tar",
                "Content-Disposition": (
                    f'attachment; filename="netsonde-evidence-{result.bundle_id[:16]}.tar"'
                ),
                "X-Netsonde-Bundle-Id": result.bundle_id,
            }
        )
        response.content_length = size
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
