"""Censor lab: the real web servers behind the censors.

Runs in the "net" namespace as ``python -m tests.lab.webserver CONFIG.json``::

    {"sites": [{"domain": "dawn.com", "ip": "192.0.2.11", "cert": "/path/dawn.com.pem"}],
     "http_port": 80, "https_port": 443}

Every site gets plain HTTP and TLS on its own IP. The certificate is chosen by the
listening IP, not by SNI, so a handshake with any SNI (or none) completes, as the
SNI-manipulation tests require. The page is chosen by Host header, falling back to
the site that owns the IP, so a "Host swap" request still gets a 200. A site with
``answer_delay_ms`` starts each TLS handshake that long after the connection: a far server,
whose answer an on-path injector near the client beats (``tests.lab.onpath_injector``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.lab.service import Cleanup, run_service

MAX_BYTES = 64 * 1024 * 1024
CHUNK_SIZE = 64 * 1024
# One pre-built chunk serves every /bytes request, so a 64 MiB body costs 64 KiB of memory.
_PATTERN = bytes(range(256)) * (CHUNK_SIZE // 256)
# Requests carry no bodies in the lab; a small cap keeps a misbehaving client cheap.
CLIENT_MAX_SIZE = 64 * 1024
# aiohttp waits this long twice (graceful, then after cancelling), and SIGTERM must stop
# the daemon within a second even while a throughput download runs.
SHUTDOWN_TIMEOUT = 0.2

_FILLER = (
    "Readers across the region follow {domain} for reporting on politics, economy and culture.",
    "The editorial team at {domain} publishes several updates every hour of the day.",
    "Archived stories on {domain} go back more than a decade and are free to read.",
    "Opinion pieces on {domain} are written by columnists from many backgrounds.",
    "Subscribers to {domain} receive a morning briefing with the top headlines.",
    "Photographs on {domain} are licensed from agencies and local contributors.",
)


@dataclass(frozen=True)
class Site:
    domain: str
    ip: str
    cert: str
    # A redirecting site answers "/" with this Location, and /r/N with /r/N+1 forever: the
    # chains, loops and endless redirects of the redirect rows.
    redirect_to: str | None = None
    redirect_status: int = 302
    redirect_from: str | None = None  # only requests of this scheme redirect (http -> https)
    # Clients from these networks get a bot challenge instead of the page, as a CDN serves
    # one to a whole ISP's addresses: the CAPTCHA row, which only differs from the control.
    challenge: tuple[str, ...] = ()
    answer_delay_ms: int = 0  # how late a TLS handshake starts: a far server

    def challenges(self, request: web.BaseRequest) -> bool:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer or not self.challenge:
            return False
        client = ipaddress.ip_address(peer[0])
        return any(client in ipaddress.ip_network(net) for net in self.challenge)

    def redirects(self, request: web.BaseRequest) -> str | None:
        scheme = "https" if request.secure else "http"
        if self.redirect_from not in (None, scheme):
            return None
        return self.redirect_to


def _title(domain: str) -> str:
    return f"{domain} — netsonde lab site"


def render_page(domain: str) -> str:
    """The site's home page; its length depends on the domain so sites are told apart by size."""
    name = html.escape(domain)
    # A stable digest, unlike hash(), keeps page sizes identical across runs and processes.
    seed = hashlib.sha256(domain.encode()).digest()
    count = 2 + seed[0] % 7
    paragraphs = "\n".join(
        f"    <p>{_FILLER[(seed[1] + i) % len(_FILLER)].format(domain=name)}</p>"
        for i in range(count)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(_title(domain))}</title>
</head>
<body>
  <header><h1>Welcome to {name}</h1></header>
  <main>
{paragraphs}
  </main>
  <nav>
    <a href="/">Home</a> |
    <a href="/about">About {name}</a> |
    <a href="https://{name}/contact">Contact</a>
  </nav>
  <footer><p>&copy; {name}. Served by the netsonde censor lab.</p></footer>
</body>
</html>
"""


def render_not_found(domain: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{html.escape(_title(domain))}</title></head>
<body><h1>404 Not Found</h1><p>No such page on {html.escape(domain)}.</p></body>
</html>
"""


class SiteDirectory:
    """Resolves which configured site a request is for."""

    def __init__(self, sites: list[Site]) -> None:
        self._by_domain = {site.domain.lower(): site for site in sites}
        self._by_ip = {site.ip: site for site in sites}

    def site_for(self, request: web.BaseRequest) -> str:
        site = self.config_for(request)
        if site is not None:
            return site.domain
        # Unreachable with a correct config; any answer beats a 500 for a lab client.
        return _host_name(request.headers.get("Host", "")) or _local_ip(request) or "unknown"

    def config_for(self, request: web.BaseRequest) -> Site | None:
        host = _host_name(request.headers.get("Host", ""))
        if host in self._by_domain:
            return self._by_domain[host]
        return self._by_ip.get(_local_ip(request))


def _host_name(header: str) -> str:
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _local_ip(request: web.BaseRequest) -> str:
    if request.transport is None:
        return ""
    sockname = request.transport.get_extra_info("sockname")
    return str(sockname[0]) if sockname else ""


SITES_KEY = web.AppKey("sites", SiteDirectory)


def _html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Server": "netsonde-lab"},
    )


def _redirect(site: Site, location: str) -> web.Response:
    return web.Response(
        status=site.redirect_status, headers={"Location": location, "Server": "netsonde-lab"}
    )


# Worded like a CDN's browser check; OONI lists that phrase as a known false positive
# (cp.fp_x_cloudflare_check), so no fingerprint names it as a blockpage.
CHALLENGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Just a moment...</title></head>
<body><h1>Checking your browser before accessing {domain}.</h1>
<p>Unusual traffic from your network. Please complete the security check.</p></body>
</html>
"""


async def handle_index(request: web.Request) -> web.Response:
    site = request.app[SITES_KEY].config_for(request)
    if site is not None and site.challenges(request):
        return _html_response(CHALLENGE_HTML.format(domain=html.escape(site.domain)), 403)
    if site is not None and (location := site.redirects(request)) is not None:
        return _redirect(site, location)
    return _html_response(render_page(request.app[SITES_KEY].site_for(request)))


async def handle_endless(request: web.Request) -> web.Response:
    site = request.app[SITES_KEY].config_for(request)
    step = request.match_info["n"]
    if site is None or site.redirect_to is None or not step.isdigit():
        return await handle_not_found(request)
    return _redirect(site, f"/r/{int(step) + 1}")


async def handle_bytes(request: web.Request) -> web.StreamResponse:
    text = request.match_info["n"]
    size = int(text) if text.isdigit() else -1
    if not 0 <= size <= MAX_BYTES:
        return web.Response(
            text=f"n must be an integer in 0..{MAX_BYTES}\n",
            status=400,
            headers={"Server": "netsonde-lab"},
        )
    response = web.StreamResponse(headers={"Server": "netsonde-lab"})
    response.content_type = "application/octet-stream"
    response.content_length = size
    await response.prepare(request)
    remaining = size
    try:
        while remaining > 0:
            chunk = _PATTERN[: min(remaining, CHUNK_SIZE)]
            # write() waits on TCP backpressure, which is what throttling tests measure.
            await response.write(chunk)
            remaining -= len(chunk)
        await response.write_eof()
    except ConnectionError:
        # Throughput probes hang up mid-download on purpose; that is not a server error.
        pass
    return response


async def handle_not_found(request: web.Request) -> web.Response:
    domain = request.app[SITES_KEY].site_for(request)
    return _html_response(render_not_found(domain), status=404)


def build_app(sites: list[Site]) -> web.Application:
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[SITES_KEY] = SiteDirectory(sites)
    app.router.add_get("/", handle_index)
    app.router.add_get("/bytes/{n}", handle_bytes)
    app.router.add_get("/r/{n}", handle_endless)
    app.router.add_route("*", "/{tail:.*}", handle_not_found)
    return app


def _tls_context(cert_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path)
    return context


def parse_sites(config: dict[str, Any]) -> list[Site]:
    return [
        Site(
            domain=str(s["domain"]),
            ip=str(s["ip"]),
            cert=str(s["cert"]),
            redirect_to=s.get("redirect_to"),
            redirect_status=int(s.get("redirect_status") or 302),
            redirect_from=s.get("redirect_from"),
            challenge=tuple(s.get("challenge", ())),
            answer_delay_ms=int(s.get("answer_delay_ms", 0)),
        )
        for s in config.get("sites", [])
    ]


async def start(config: dict[str, Any]) -> Cleanup:
    sites = parse_sites(config)
    http_port = int(config.get("http_port", 80))
    https_port = int(config.get("https_port", 443))
    runner = web.AppRunner(build_app(sites), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    late: list[asyncio.Task[None]] = []
    for site in sites:
        plain = web.TCPSite(runner, site.ip, http_port, reuse_address=True)
        await plain.start()
        if site.answer_delay_ms:
            late.append(asyncio.create_task(_serve_late(runner.server, site, https_port)))
            continue
        secure = web.TCPSite(
            runner,
            site.ip,
            https_port,
            ssl_context=_tls_context(site.cert),
            reuse_address=True,
        )
        await secure.start()

    async def cleanup() -> None:
        for task in late:
            task.cancel()
        await runner.cleanup()

    return cleanup


async def _serve_late(server: web.Server | None, site: Site, port: int) -> None:
    """TLS on the site's address, each handshake begun ``answer_delay_ms`` after the
    connection: the ClientHello waits in the socket meanwhile, as on a long path."""
    assert server is not None  # set up before the sites start
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in site.ip else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((site.ip, port))
    listener.listen(128)
    listener.setblocking(False)
    context = _tls_context(site.cert)
    pending: set[asyncio.Task[None]] = set()
    try:
        while True:
            conn, _peer = await loop.sock_accept(listener)
            task = asyncio.create_task(_answer_late(server, conn, context, site.answer_delay_ms))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        listener.close()
        for task in pending:
            task.cancel()


async def _answer_late(
    server: web.Server, conn: socket.socket, context: ssl.SSLContext, delay_ms: int
) -> None:
    await asyncio.sleep(delay_ms / 1000)
    try:
        # Handed to aiohttp, TLS first, as its own listener would hand it.
        await asyncio.get_running_loop().connect_accepted_socket(server, conn, ssl=context)
    except (OSError, ssl.SSLError):
        # The on-path row's client is gone by now, reset by the tap: nothing to serve.
        with contextlib.suppress(OSError):
            conn.close()


if __name__ == "__main__":
    run_service(start)
