"""Agent net: one bounded transfer through the far end, down or up, over an open stream.

The far end's protocol is ``agent.model.farend``. A download reads for at most ``window``
seconds after the first payload byte, or ``size`` bytes; an upload sends for about as long,
and the far end, which sees when the bytes arrive, says what it got and over what time. A
transfer cut by the network is a failure string like any other; a far end that refuses (a
bad token, a spent cap) is an HTTP status, which is not the network's doing. The stream is
closed afterwards. Timing is in microseconds: a fast transfer can end within a few.
"""

from __future__ import annotations

import asyncio
import json
import time

from agent.model.farend import DOWN_PREFIX, TOKEN_HEADER, UP_PREFIX, WINDOW_HEADER
from agent.model.observations import Transfer
from agent.net.errors import ProtocolError, capture
from agent.net.tcp import Stream

__all__ = ["download", "upload"]

MAX_HEAD = 8192
MAX_ANSWER = 4096  # the far end's JSON answer, or its error
# What one send carries, and over TLS one record: the far end times an upload by the records
# it gets whole, and a 16 KiB one would take a second to cross a 150 kbit/s throttle.
_CHUNK = 4096
_BODY = bytes(range(256)) * (_CHUNK // 256)
# An upload stops sending this long after its window: the far end has answered by then.
UPLOAD_GRACE = 0.5


def _us(seconds: float) -> int:
    return max(0, round(seconds * 1e6))


def _request(method: str, path: str, host: str, token: str, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{TOKEN_HEADER}: {token}\r\n"
        f"User-Agent: Mozilla/5.0\r\nAccept: */*\r\n{extra}Connection: close\r\n\r\n"
    ).encode("ascii")


class _Head:
    """The far end's answer head: its status, Content-Length, and the body bytes after it."""

    def __init__(self, status: int, length: int | None, rest: bytes) -> None:
        self.status, self.length, self.rest = status, length, rest


async def _read_head(stream: Stream, data: bytes = b"") -> _Head:
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise ProtocolError("far end answer head too long")
        chunk = await stream.recv()
        if not chunk:
            raise EOFError("connection closed before the answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError("malformed http status line")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    return _Head(int(parts[1]), length, rest)


async def _answer(stream: Stream, head: _Head) -> bytes:
    """A small body (an upload's JSON, an error), at most :data:`MAX_ANSWER` bytes."""
    want = min(head.length if head.length is not None else MAX_ANSWER, MAX_ANSWER)
    body = head.rest
    while len(body) < want:
        chunk = await stream.recv()
        if not chunk:
            break
        body += chunk
    return body[:want]


def _failed(up: bool, status: int | None, failure: str | None, total_us: int = 0) -> Transfer:
    return Transfer(up, False, 0.0, None, None, 0, 0, 0, total_us, status, failure)


class _Window:
    """What a download saw: bytes, the first read's size and when each end came."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.bytes = self.skip = 0
        self.first = self.last = 0.0

    def add(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.bytes:
            self.first, self.skip = now, len(data)
        self.bytes += len(data)
        self.last = now


async def _fill(stream: Stream, seen: _Window, size: int, window: float) -> None:
    """Reads until ``size`` bytes or ``window`` seconds after the first; the window's end is
    not a failure, the connection's is."""
    while seen.bytes < size:
        left = window - (time.monotonic() - seen.first) if seen.bytes else None
        if left is not None and left <= 0:
            return
        try:
            async with asyncio.timeout(left):
                data = await stream.recv()
        except TimeoutError:
            if left is None:
                raise
            return
        if not data:
            raise EOFError("connection closed inside the transfer")
        seen.add(data)


async def download(
    stream: Stream, host: str, token: str, size: int, *, window: float, timeout: float
) -> Transfer:
    """``GET /down/size`` naming ``host``; the payload read within ``window``."""
    started = time.monotonic()
    seen = _Window(started)
    head: _Head | None = None
    try:
        with capture() as outcome:
            async with asyncio.timeout(timeout):
                await stream.send(_request("GET", f"{DOWN_PREFIX}{size}", host, token))
                head = await _read_head(stream)
                if head.status == 200:
                    if head.rest:
                        seen.add(head.rest[:size])
                    await _fill(stream, seen, size, window)
    finally:
        stream.close()
    status = head.status if head is not None else None
    if seen.bytes == 0:
        return _failed(False, status, outcome.failure)
    return Transfer(
        up=False, trigger=False, connect_ms=0.0, handshake_ms=None,
        ttfb_ms=round((seen.first - started) * 1000, 1), bytes=seen.bytes, skip=seen.skip,
        us=_us(seen.last - seen.first), total_us=_us(seen.last - started), status=status,
        failure=outcome.failure,
    )  # fmt: skip


def _counts(body: bytes) -> tuple[int, int, int, int] | None:
    """The far end's ``{"bytes", "skip", "us", "total_us"}``, or None if it is not that."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    keys = ("bytes", "skip", "us", "total_us")
    if not isinstance(data, dict):
        return None
    values: list[int] = []
    for key in keys:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            return None
        values.append(value)
    return values[0], values[1], values[2], values[3]


async def _send_body(stream: Stream, size: int, window: float) -> None:
    """Sends until ``size`` bytes or a little past ``window``, even mid-send: on a throttled
    uplink a send waits for room in the socket's buffer, and the far end answers anyway."""
    sent = 0
    try:
        async with asyncio.timeout(window + UPLOAD_GRACE):
            while sent < size:
                chunk = _BODY[: min(_CHUNK, size - sent)]
                await stream.send(chunk)
                sent += len(chunk)
    except TimeoutError:
        pass  # the far end has what it got in its window; it says how much


async def upload(
    stream: Stream, host: str, token: str, size: int, *, window: float, timeout: float
) -> Transfer:
    """``POST /up/size`` naming ``host``; what the far end received within ``window``."""
    extra = f"Content-Length: {size}\r\n{WINDOW_HEADER}: {round(window * 1000)}\r\n"
    extra += "Expect: 100-continue\r\n"
    started = time.monotonic()
    head: _Head | None = None
    counts = None
    try:
        with capture() as outcome:
            async with asyncio.timeout(timeout):
                await stream.send(_request("POST", f"{UP_PREFIX}{size}", host, token, extra))
                # The far end says 100 once it has checked the token and the caps; until
                # then a body would only run into its refusal.
                head = await _read_head(stream)
                if head.status == 100:
                    await _send_body(stream, size, window)
                    head = await _read_head(stream, head.rest)
                body = await _answer(stream, head)
                if head.status == 200 and (counts := _counts(body)) is None:
                    raise ProtocolError("far end answer is not its upload counts")
    finally:
        stream.close()
    status = head.status if head is not None else None
    if counts is None:
        return _failed(True, status, outcome.failure, _us(time.monotonic() - started))
    moved, skip, us, total_us = counts
    return Transfer(True, False, 0.0, None, None, moved, skip, us, total_us, status, None)
