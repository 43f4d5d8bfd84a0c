"""Collector far end: one TCP connection, plain or TLS, answered as ``agent.model.farend`` says.

The connection's first request decides everything: its head (at most :data:`MAX_HEAD` bytes,
within :data:`HEAD_TIMEOUT`), then the token, then the transfer's bounds (size, window, the
agent's concurrency and daily bytes). Anything wrong gets a JSON error and the connection
closes; nothing is kept open past :data:`CONNECTION_DEADLINE`. Any Host is accepted, as any
SNI is by the TLS port: the throttle test sends the target's name on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from agent.model.farend import (
    DOWN_PREFIX,
    MAX_TRANSFER,
    MAX_WINDOW_MS,
    TOKEN_HEADER,
    UP_PREFIX,
    WINDOW_HEADER,
)
from collector.farend.limits import Allowance, Counts
from collector.farend.tokens import TokenError, TokenSigner

__all__ = ["CONNECTION_DEADLINE", "HEAD_TIMEOUT", "MAX_HEAD", "Refused", "Transfers"]

MAX_HEAD = 8192
HEAD_TIMEOUT = 10.0
CONNECTION_DEADLINE = 30.0
DRAIN_AFTER_ANSWER = 2.0  # an upload's unread bytes, read and dropped before closing
_CHUNK = 64 * 1024  # what one read takes
# What one write sends, and over TLS one record: an agent times a transfer by the records it
# gets whole, so at 150 kbit/s a 16 KiB record would take a second to arrive.
_WRITE = 4096
_PAYLOAD = os.urandom(_WRITE)  # incompressible: no middlebox can shrink it
_REASONS = {400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}
_REASONS |= {503: "Service Unavailable", 200: "OK"}
RawServe = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
NETWORK_ERRORS = (ConnectionError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError)


class Refused(Exception):
    """A request turned away: its status, what the agent is told, and the metrics reason."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


def parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refused(400, "not an HTTP/1.1 request", "request")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Refused(400, "malformed header", "request")
        headers[name.strip().lower()] = value.strip()
    return Request(parts[0], parts[1], headers)


def _size(path: str, prefix: str) -> int:
    text = path[len(prefix) :]
    if not text.isdigit() or len(text) > 9 or not 0 < int(text) <= MAX_TRANSFER:
        raise Refused(400, f"the size must be 1..{MAX_TRANSFER} bytes", "request")
    return int(text)


def _window_s(request: Request) -> float:
    text = request.headers.get(WINDOW_HEADER.lower(), str(MAX_WINDOW_MS))
    if not text.isdigit() or not 0 < int(text) <= MAX_WINDOW_MS:
        raise Refused(400, f"{WINDOW_HEADER} must be 1..{MAX_WINDOW_MS}", "request")
    return int(text) / 1000


def _answer_head(status: int, length: int, content_type: str) -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\nServer: netsonde-farend\r\n\r\n"
    ).encode("ascii")


def _json_answer(status: int, body: Mapping[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return _answer_head(status, len(data), "application/json") + data


class Transfers:
    """Serves the far end's TCP connections, within an :class:`Allowance`."""

    def __init__(self, signer: TokenSigner, allowance: Allowance, count: Counts) -> None:
        self.signer, self.allowance, self.count = signer, allowance, count
        self.max_open = 4 * allowance.max_transfers  # heads still coming in, included
        self.tasks: set[asyncio.Task[None]] = set()
        # What serves a connection that opens with no HTTP request (collector.farend.rawecho).
        self.raw: RawServe | None = None

    async def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            if len(self.tasks) > self.max_open:
                self.count.refused("busy")
                return
            async with asyncio.timeout(CONNECTION_DEADLINE):
                await self._serve(reader, writer)
        except Refused as exc:
            self.count.refused(exc.reason)
            await _send_quietly(writer, _json_answer(exc.status, {"error": str(exc)}))
        except (*NETWORK_ERRORS, asyncio.LimitOverrunError):
            pass  # the agent went away, or the deadline passed: nothing to answer
        except asyncio.CancelledError:
            pass  # the far end is stopping (cancel_all): the connection just closes
        finally:
            self.tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                first = await reader.readexactly(1)
                if self.raw is not None and not first.isalpha():
                    raw = self.raw
                else:
                    raw = None
                    head = first + await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            raise Refused(400, "no complete request head", "request") from None
        if raw is not None:
            await raw(first, reader, writer)
            return
        request = parse_head(head)
        try:
            agent = self.signer.verify(request.headers.get(TOKEN_HEADER.lower(), ""))
        except TokenError as exc:
            raise Refused(401, f"{TOKEN_HEADER}: {exc}", "token") from None
        if request.method == "GET" and request.path.startswith(DOWN_PREFIX):
            size, up = _size(request.path, DOWN_PREFIX), False
        elif request.method == "POST" and request.path.startswith(UP_PREFIX):
            size, up = _size(request.path, UP_PREFIX), True
            if request.headers.get("content-length") != str(size):
                raise Refused(400, "Content-Length must be the size in the path", "request")
        else:
            raise Refused(400, f"only GET {DOWN_PREFIX}N and POST {UP_PREFIX}N", "request")
        await self._bounded(agent, size, up, request, reader, writer)

    async def _bounded(
        self,
        agent: str,
        size: int,
        up: bool,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        window = _window_s(request) if up else 0.0
        if not self.allowance.start(agent):
            raise Refused(503, "too many transfers at once; try again later", "busy")
        moved = 0
        counts: dict[str, int] = {}
        try:
            if not self.allowance.reserve(agent, size):
                raise Refused(429, "this agent's daily far-end bytes are spent", "cap")
            try:
                if up:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    counts = await _receive(reader, size, window, time.monotonic())
                    moved = counts["bytes"]
                else:
                    moved = await _download(writer, size)
            finally:
                self.allowance.settle(agent, size, moved)
                self.count.moved("up" if up else "down", moved)
        finally:
            self.allowance.finish(agent)
        if up:
            await _answer_upload(reader, writer, counts)


async def _send_quietly(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        async with asyncio.timeout(HEAD_TIMEOUT):
            await writer.drain()
    except (*NETWORK_ERRORS, RuntimeError):
        pass


async def _download(writer: asyncio.StreamWriter, size: int) -> int:
    """Streams ``size`` bytes; how many were handed to the network before the agent left."""
    writer.write(_answer_head(200, size, "application/octet-stream"))
    sent = 0
    try:
        while sent < size:
            chunk = _PAYLOAD[: min(_WRITE, size - sent)]
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    except NETWORK_ERRORS:
        pass  # the agent stops reading at the end of its window, on purpose
    return sent


async def _receive(
    reader: asyncio.StreamReader, size: int, window: float, head_at: float
) -> dict[str, int]:
    """Reads up to ``size`` bytes for ``window`` seconds from the first: what came, and when."""
    received = skip = 0
    first = last = head_at
    try:
        while received < size:
            left = window - (time.monotonic() - first) if received else CONNECTION_DEADLINE
            if left <= 0:
                break
            async with asyncio.timeout(left):
                data = await reader.read(min(_CHUNK, size - received))
            if not data:
                break
            last = time.monotonic()
            if not received:
                first, skip = last, len(data)
            received += len(data)
    except TimeoutError:
        pass  # the window ended while waiting for more
    return {
        "bytes": received,
        "skip": skip,
        "us": round((last - first) * 1e6),
        "total_us": round((last - head_at) * 1e6),
    }


async def _answer_upload(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int]
) -> None:
    writer.write(_json_answer(200, counts))
    await writer.drain()
    # Closing on unread bytes would reset the connection, and the answer with it.
    try:
        async with asyncio.timeout(DRAIN_AFTER_ANSWER):
            while await reader.read(_CHUNK):
                pass
    except TimeoutError:
        pass
