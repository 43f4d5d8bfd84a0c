"""Collector far end: the running server, its TLS and plain HTTP ports and its UDP echo.

``netsonde-collector serve`` starts one beside the API (``collector.web.app``), and
``netsonde-collector farend`` runs one alone (``collector.farend.cli``). Either way it needs
the token secret the API signs with (``collector.farend.files``) and reports what it refuses
and moves to a :class:`collector.farend.limits.Counts`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass

from collector.farend import FarendError
from collector.farend.config import FarendConfig
from collector.farend.files import load_secret, tls_context
from collector.farend.limits import Allowance, Counts, NoCounts
from collector.farend.rawecho import RawEcho
from collector.farend.tokens import TokenSigner
from collector.farend.transfers import HEAD_TIMEOUT, MAX_HEAD, Transfers
from collector.farend.udp import Echo

__all__ = ["Farend", "FarendStartError", "Ports", "signer_for"]

log = logging.getLogger("netsonde.collector")


class FarendStartError(FarendError):
    """The far end cannot listen (a port in use, no permission); the message says where."""


@dataclass(frozen=True)
class Ports:
    tls: int
    http: int
    udp: int


def signer_for(config: FarendConfig) -> TokenSigner:
    """The token signer of the secret in ``config.state_dir`` (made on first use)."""
    return TokenSigner(load_secret(config.state_dir), config.token_ttl)


class Farend:
    def __init__(self, config: FarendConfig, counts: Counts | None = None) -> None:
        self.config = config
        self.signer = signer_for(config)
        self.allowance = Allowance(config.daily_bytes, config.max_transfers, config.per_agent)
        counts = counts or NoCounts()
        self.transfers = Transfers(self.signer, self.allowance, counts)
        self.echo = Echo(self.signer, self.allowance, counts)
        self.transfers.raw = RawEcho(self.echo.leased, self.allowance, counts).serve
        self._servers: list[asyncio.Server] = []
        self._udp: asyncio.DatagramTransport | None = None
        self.ports = Ports(config.tls_port, config.http_port, config.udp_port)

    async def start(self) -> Ports:
        """Listens on the three ports; FarendStartError, with nothing left open, if one fails."""
        config = self.config
        context = tls_context(config.state_dir)
        try:
            tls = await self._listen(config.tls_port, context)
            plain = await self._listen(config.http_port, None)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self.echo, local_addr=(config.host, config.udp_port)
            )
        except OSError as exc:
            await self.stop()
            raise FarendStartError(
                f"the far end cannot listen on {config.host}: {exc.strerror or exc}"
            ) from exc
        self._udp = transport
        udp = transport.get_extra_info("sockname")[1]
        self.ports = Ports(tls, plain, int(udp))
        log.info("far end on %s: TLS %d, HTTP %d, UDP %d", config.host, tls, plain, self.ports.udp)
        if ipaddress.ip_address(transport.get_extra_info("sockname")[0]).is_loopback:
            log.warning("the far end listens on loopback: agents elsewhere need --farend-host")
        return self.ports

    async def _listen(self, port: int, context: ssl.SSLContext | None) -> int:
        server = await asyncio.start_server(
            self.transfers.handle,
            self.config.host,
            port,
            ssl=context,
            ssl_handshake_timeout=HEAD_TIMEOUT if context is not None else None,
            limit=MAX_HEAD,
            reuse_address=True,
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        # Transfers end by themselves within their deadline; a stop does not wait for that.
        await self.transfers.cancel_all()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        if self._udp is not None:
            self._udp.close()
            self._udp = None
