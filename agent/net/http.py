"""Agent net: one HTTP/1.1 GET over an already-open plain or TLS stream.

The caller picks the IP (by connecting), the SNI (by handshaking) and here the Host
header, independently: that is what lets a probe send Host X to IP Y, or swap in a
benign name. The response is parsed by hand rather than with an HTTP client library
because a client would resolve, pool, retry and follow redirects, and each of those
would hide what the network did to this one request. Bodies are read up to
``max_body`` only, and kept as a length, a hash and a title.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from agent.model.observations import HTTPRoundTrip, Inspector
from agent.net.errors import ProtocolError, capture
from agent.net.tcp import Stream, elapsed_ms

MAX_BODY = 1 << 20
MAX_HEAD = 64 * 1024
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TITLE_MAX = 256
# Every printable ASCII character but space stays as it is; the rest is percent-encoded.
_ASCII_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


class _Reader:
    """Buffered reads over a Stream; only what HTTP/1.1 framing needs."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer = b""
        self.eof = False

    async def _more(self) -> None:
        data = await self.stream.recv()
        if data:
            self.buffer += data
        else:
            self.eof = True

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if self.eof:
                raise EOFError("connection closed inside a header line")
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolError("http header line too long")
            await self._more()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if self.eof:
                raise EOFError("connection closed inside the body")
            await self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def some(self) -> bytes:
        """Whatever is buffered or arrives next; b"" at the end of the stream."""
        if not self.buffer and not self.eof:
            await self._more()
        data, self.buffer = self.buffer, b""
        return data


@dataclass
class _Response:
    status: int | None = None
    headers: list[tuple[str, str]] | None = None
    body: bytes = b""
    truncated: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers or [] if k == name), None)


async def _head(reader: _Reader, response: _Response) -> None:
    while True:
        parts = (await reader.line()).split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ProtocolError("malformed http status line")
        headers: list[tuple[str, str]] = []
        while line := await reader.line():
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("malformed http header")
            headers.append(
                (name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
            )
        status = int(parts[1])
        if not 100 <= status < 200:  # interim responses precede the real one
            response.status, response.headers = status, headers
            return


async def _body(reader: _Reader, response: _Response, max_body: int) -> None:
    """Read the body, keeping at most ``max_body`` bytes and stopping once past it."""
    assert response.status is not None
    if response.status in (204, 304):
        return
    chunks: list[bytes] = []
    kept = 0

    def keep(data: bytes) -> bool:
        """Store what fits; False once the body is known to be longer than max_body."""
        nonlocal kept
        room = max_body - kept
        chunks.append(data[:room])
        kept += len(chunks[-1])
        response.truncated = len(data) > room
        return not response.truncated

    try:
        if (response.header("transfer-encoding") or "").lower().endswith("chunked"):
            while size := _chunk_size(await reader.line()):
                if not keep(await reader.exactly(size)):
                    return
                await reader.exactly(2)
        elif (length := response.header("content-length")) is not None and length.isdigit():
            remaining = int(length)
            while remaining > 0 and keep(data := await reader.exactly(min(remaining, 65536))):
                remaining -= len(data)
        else:
            await _until_close(reader, keep)
    finally:
        response.body = b"".join(chunks)


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";")[0].strip()
    try:
        return int(digits, 16)
    except ValueError:
        raise ProtocolError("malformed chunk size") from None


async def _until_close(reader: _Reader, keep: Callable[[bytes], bool]) -> None:
    try:
        while (data := await reader.some()) and keep(data):
            pass
    except ssl.SSLEOFError:
        # Framing, not failure: with no length the body ends when the connection does,
        # and many servers close TLS without close_notify, as a plain FIN would here.
        return


def _title(body: bytes) -> str | None:
    match = _TITLE_RE.search(body)
    if match is None:
        return None
    text = html.unescape(match.group(1).decode("utf-8", errors="replace"))
    return " ".join(text.split())[:_TITLE_MAX]


def request_bytes(host: str, path: str) -> bytes:
    """The request's bytes. Whatever the caller passed, the request line and Host header go
    out as ASCII (non-ASCII percent-encoded, as a browser sends a path), and an IPv6
    literal in brackets, as RFC 9110 writes it in Host."""
    named = f"[{host}]" if ":" in host and not host.startswith("[") else host
    target, named = quote(path, safe=_ASCII_SAFE), quote(named, safe=_ASCII_SAFE)
    return (
        f"GET {target} HTTP/1.1\r\nHost: {named}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: text/html,*/*;q=0.8\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


async def round_trip(
    stream: Stream,
    host: str,
    path: str = "/",
    *,
    max_body: int = MAX_BODY,
    timeout: float = 10.0,
    inspect: Inspector | None = None,
) -> HTTPRoundTrip:
    """GET ``path`` with ``Host: host`` over ``stream``; the stream is closed afterwards."""
    request = request_bytes(host, path)
    reader = _Reader(stream)
    response = _Response()
    start = time.monotonic()
    try:
        with capture() as outcome:
            async with asyncio.timeout(timeout):
                await stream.send(request)
                await _head(reader, response)
                await _body(reader, response, max_body)
    finally:
        stream.close()
    length = response.header("content-length")
    fingerprint = None
    if inspect is not None and response.status is not None:
        # Matching a large body against ~2,000 fingerprints takes tens of milliseconds:
        # off the event loop, so the other measurements' timers stay honest.
        fingerprint = await asyncio.to_thread(inspect, response.body, response.headers or [])
    return HTTPRoundTrip(
        host=host,
        path=path,
        status=response.status,
        server=response.header("server"),
        location=response.header("location"),
        content_type=response.header("content-type"),
        content_length=int(length) if length is not None and length.isdigit() else None,
        set_cookie_count=sum(1 for k, _ in response.headers or [] if k == "set-cookie"),
        body_length=len(response.body),
        body_truncated=response.truncated,
        body_sha256=hashlib.sha256(response.body).hexdigest() if response.status else None,
        title=_title(response.body),
        ms=elapsed_ms(start),
        failure=outcome.failure,
        fingerprint=fingerprint,
    )
