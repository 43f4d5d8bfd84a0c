"""Collector web layer: ``GET /api/v1/export``, measurements streamed as JSON lines.

``?format=jsonl|ooni&domain=&asn=&since=&until=`` (``asn`` repeated, or comma separated,
for several networks; ``since`` defaults to the start, ``until`` to now). Public, at network
granularity: the lines name the network, never the agent; the operator's token adds the
agent id (``collector.web.operator``). A bad parameter is a 400 before anything is sent.

The body streams: a page of rows is read and rendered on a worker thread
(``collector.export.stream``) while the previous one is written, so at most two pages are
held, whatever the period. The next page is read only once the last is written out, so a
slow client slows the export down rather than fill the collector's memory; one that stops
reading is cut once a chunk waits longer than :func:`write_deadline`, and one that goes
away cancels the handler (handler cancellation, on in ``serve``), which stops the worker
thread at its next row. At most ``MAX_EXPORTS`` run at once: more get a 503 and
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import MultiMapping

from agent.api.paths import EXPORT_PATH
from collector.errors import ApiError
from collector.evidence.query import MAX_ASNS, EvidenceQuery, parse_query
from collector.export.stream import FORMATS, ExportLimits, ExportStream
from collector.ingest.accept import now_ms
from collector.web.keys import ENRICHER, EXPORTS, STORAGE
from collector.web.operator import is_operator
from collector.web.params import BadParam
from collector.web.queries import cancellable

__all__ = ["install", "routes", "write_deadline"]

log = logging.getLogger("netsonde.collector.web")
routes = web.RouteTableDef()

# The parameters, each with its longest value, checked before it is looked at.
MAX_LENGTH = {"format": 8, "domain": 1024, "asn": MAX_ASNS * 13, "since": 40, "until": 40}
# A chunk (a page, a few MB) may take this long to leave, plus a second per MIN_RATE bytes:
# a reader on a slow, throttled link keeps its export as long as it keeps reading.
WRITE_GRACE_S = 30.0
MIN_RATE = 8 * 1024
BUSY_RETRY_S = 30.0
MEDIA_TYPE = "application/x-ndjson"


def write_deadline(size: int) -> float:
    return WRITE_GRACE_S + size / MIN_RATE


def _checked(query: MultiMapping[str]) -> tuple[dict[str, str], list[str]]:
    """The parameters given, each within its length, empty ones left out, and the ASNs
    (``asn`` repeated, or comma separated, as the evidence route takes them)."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    asns: list[str] = []
    for name, value in query.items():
        if name not in MAX_LENGTH:
            raise BadParam(f"unknown parameter {name[:40]!r}; allowed: {', '.join(MAX_LENGTH)}")
        if name in seen and name != "asn":
            raise BadParam(f"{name!r} is given more than once")
        seen.add(name)
        if len(value) > MAX_LENGTH[name]:
            raise BadParam(f"{name!r} is too long: at most {MAX_LENGTH[name]} characters")
        if name == "asn":
            asns += [part for part in value.split(",") if part.strip()]
        elif value:
            params[name] = value
    if len(asns) > MAX_ASNS:
        raise BadParam(f"'asn': {len(asns)} networks, at most {MAX_ASNS}")
    return params, asns


def export_params(query: MultiMapping[str]) -> tuple[str, EvidenceQuery]:
    """The format and the query asked for; :class:`BadParam` naming what is wrong."""
    params, asns = _checked(query)
    fmt = params.get("format", "jsonl")
    if fmt not in FORMATS:
        raise BadParam(f"'format' must be one of: {', '.join(FORMATS)}")
    since, until = params.get("since", "0"), params.get("until", str(now_ms() + 1))
    try:
        return fmt, parse_query(params.get("domain"), asns, since, until)
    except ValueError as exc:
        raise BadParam(str(exc)) from None


def _retrieve(task: asyncio.Future[bytes | None]) -> None:
    """A page abandoned when the export stopped: its outcome is of no interest, and is
    retrieved so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def _stream(stream: ExportStream, response: web.StreamResponse) -> None:
    pending = asyncio.ensure_future(cancellable(stream.next_chunk))
    try:
        while (chunk := await pending) is not None:
            # The next page is read and rendered while this one goes out.
            pending = asyncio.ensure_future(cancellable(stream.next_chunk))
            await asyncio.wait_for(response.write(chunk), write_deadline(len(chunk)))
    finally:
        # The client went away, stopped reading, or the handler was cancelled: the page
        # being read is dropped, and its worker thread stops at its next row.
        if not pending.done():
            pending.add_done_callback(_retrieve)
            pending.cancel()


@routes.get(EXPORT_PATH, allow_head=False)
async def export(request: web.Request) -> web.StreamResponse:
    fmt, query = export_params(request.query)
    operator = await is_operator(request)
    limits = request.app[EXPORTS]
    if limits.slots.locked():
        raise ApiError(
            503,
            "too many exports running; try again shortly",
            "export_busy",
            retry_after=BUSY_RETRY_S,
        )
    async with limits.slots:
        stream = ExportStream(
            request.app[STORAGE],
            query,
            fmt,
            operator=operator,
            page_rows=limits.page_rows,
            lookup=request.app[ENRICHER].lookup,
        )
        response = web.StreamResponse(
            headers={
                "Content-Type": f"{MEDIA_TYPE}; charset=utf-8",
                "Content-Disposition": f'attachment; filename="netsonde-{fmt}.jsonl"',
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        try:
            await _stream(stream, response)
        except TimeoutError:
            log.info("export: closing a connection that stopped reading after %d rows", stream.rows)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
    return response


def install(app: web.Application) -> None:
    """The export route and its limits, on ``app``."""
    app[EXPORTS] = ExportLimits()
    app.router.add_routes(routes)
