"""Censor lab: the censor's HTTP-layer boxes.

Runs in a censor hop namespace (usually "isp") as ``python -m tests.lab.censor_http CONFIG.json``::

    {"blockpage": {"listen": ["203.0.113.80"], "cert": "/path/blockpage.pem"},
     "proxy": {"port": 3129, "blocked_hosts": ["example-blocked.org"]},
     "interceptor": {"port": 3443, "cert": "/path/interceptor.pem", "hosts": ["foo.org"]}}

Every role is optional. The blockpage server answers anything with Pakistan's national
blockpage (the target of DNS and injection censors). The transparent proxy receives port-80
traffic that iptables REDIRECTs to it, serves the blockpage for blocked Host headers and
relays everything else to the original destination. The TLS interceptor terminates
REDIRECTed port-443 traffic with a certificate from a CA that clients do not trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.lab.addresses import TLS_INTERCEPTOR_PORT, TRANSPARENT_PROXY_PORT
from tests.lab.service import Cleanup, run_service

log = logging.getLogger("censor_http")

SO_ORIGINAL_DST = 80  # from <linux/netfilter_ipv4.h>; the socket module does not export it
IP6T_SO_ORIGINAL_DST = 80  # the same for IPv6, at SOL_IPV6 (<linux/netfilter_ipv6/ip6_tables.h>)
HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
RELAY_CHUNK = 64 * 1024
CLOSE_TIMEOUT = 2.0
# aiohttp waits this long twice at shutdown; SIGTERM must stop the daemon within a second.
SHUTDOWN_TIMEOUT = 0.2

# Wording of the PTA blockpage; OONI's cp.b_nat_pak_isp_common_blockpage fingerprint keys on
# "prohibited for viewership from within Pakistan", so this phrase must survive edits verbatim.
BLOCKPAGE_HTML = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Blocked</title></head>
<body>
<center>
<h2>Surf Safely!</h2>
<p>This URL has been blocked under the instructions of the Competent Authority and is \
prohibited for viewership from within Pakistan.</p>
</center>
</body>
</html>
"""

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _http_response(body: str, status: str = "200 OK") -> bytes:
    payload = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + payload


def _tls_context(cert_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path)
    return context


def host_from_head(head: bytes) -> str:
    """The Host header of a request head, lowercased and without port; "" if absent."""
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip().decode("latin-1").lower()
            if host.startswith("["):
                return host[1:].split("]", 1)[0]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Read a request head; on failure return b"" and leave unread bytes for the relay."""
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except (asyncio.LimitOverrunError, TimeoutError):
        # readuntil keeps the buffer intact here, so the relay still forwards every byte.
        return b""


def original_destination(writer: asyncio.StreamWriter) -> tuple[str, int] | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    six = sock.family == socket.AF_INET6
    try:
        if six:
            # A sockaddr_in6: family, port, flow info, then the address.
            raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
        else:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    (port,) = struct.unpack("!H", raw[2:4])
    if six:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), int(port)
    return socket.inet_ntoa(raw[4:8]), int(port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        # A peer that stops reading, or never answers close_notify, must not pin the task.
        writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
        # Half-close: the other direction may still be sending its answer.
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on one side ends both directions; the caller closes both sockets.
        writer.transport.abort()


class StreamServer:
    """A plain asyncio server whose open connections are torn down on shutdown."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._servers: list[asyncio.Server] = []

    async def listen(self, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        # Both families: REDIRECT sends each to the wildcard address of its own.
        server = await asyncio.start_server(
            self._serve,
            ["0.0.0.0", "::"],
            port,
            ssl=ssl_context,
            limit=HEAD_LIMIT,
            reuse_address=True,
        )
        self._servers.append(server)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._handler(reader, writer)
        except OSError as exc:
            # Clients vanishing mid-request are routine for a censor box, not a daemon fault.
            log.info("connection ended early: %s", exc)
        except asyncio.CancelledError:
            # Only close() cancels; ending quietly stops asyncio from logging every connection
            # that was open at shutdown as a failed callback.
            writer.transport.abort()
        finally:
            await _close(writer)
            del self._connections[task]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        # Abort rather than close: a rate-limited client would otherwise hold shutdown hostage.
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()


class TransparentProxy:
    def __init__(self, port: int, blocked_hosts: list[str]) -> None:
        self.port = port
        self.blocked = {h.lower() for h in blocked_hosts}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        destination = original_destination(writer)
        # Without a REDIRECT the "original" destination is this very port: relaying would loop.
        if destination is None or destination[1] == self.port:
            return
        head = await read_head(reader)
        host = host_from_head(head)
        if host in self.blocked:
            log.info("proxy: blockpage for %s (to %s:%d)", host, *destination)
            writer.write(_http_response(BLOCKPAGE_HTML))
            with contextlib.suppress(OSError):
                await writer.drain()
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(*destination)
        except (OSError, TimeoutError):
            log.info("proxy: %s:%d unreachable", *destination)
            return
        try:
            up_writer.write(head)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except asyncio.CancelledError:
            up_writer.transport.abort()
            raise
        finally:
            await _close(up_writer)


class TlsInterceptor:
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if not head:
            # A handshake-only probe (or a silent client) gets nothing, as from a real middlebox.
            return
        host = host_from_head(head)
        if not host:
            destination = original_destination(writer)
            host = destination[0] if destination else "unknown"
        log.info("interceptor: answered for %s", host)
        title = html.escape(f"{host} — intercepted")
        body = (
            f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
            f"<body><h1>{title}</h1></body>\n</html>\n"
        )
        writer.write(_http_response(body))
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.drain()


async def _blockpage_handler(request: web.Request) -> web.Response:
    return web.Response(text=BLOCKPAGE_HTML, content_type="text/html", charset="utf-8")


async def start_blockpage(config: dict[str, Any]) -> web.AppRunner:
    app = web.Application(client_max_size=HEAD_LIMIT)
    app.router.add_route("*", "/{tail:.*}", _blockpage_handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    cert = config.get("cert")
    context = _tls_context(str(cert)) if cert else None
    for ip in config.get("listen", []):
        await web.TCPSite(runner, str(ip), 80, reuse_address=True).start()
        if context is not None:
            await web.TCPSite(runner, str(ip), 443, ssl_context=context, reuse_address=True).start()
    return runner


async def start(config: dict[str, Any]) -> Cleanup:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    runners: list[web.AppRunner] = []
    servers: list[StreamServer] = []
    if blockpage := config.get("blockpage"):
        runners.append(await start_blockpage(blockpage))
    if proxy_config := config.get("proxy"):
        proxy = TransparentProxy(
            int(proxy_config.get("port", TRANSPARENT_PROXY_PORT)),
            list(proxy_config.get("blocked_hosts", [])),
        )
        servers.append(StreamServer(proxy.handle))
        await servers[-1].listen(proxy.port)
    if interceptor_config := config.get("interceptor"):
        servers.append(StreamServer(TlsInterceptor().handle))
        await servers[-1].listen(
            int(interceptor_config.get("port", TLS_INTERCEPTOR_PORT)),
            _tls_context(str(interceptor_config["cert"])),
        )

    async def cleanup() -> None:
        for server in servers:
            await server.close()
        for runner in runners:
            await runner.cleanup()

    return cleanup


if __name__ == "__main__":
    run_service(start)
