"""Agent net: DNS exchanges that keep every reply, and the system resolver.

:func:`udp_exchange` sends one query in one UDP datagram and, after the first valid
reply, keeps listening for ``window`` seconds: an on-path injector races a forged
reply ahead of the real one, so a second reply to a single query is the evidence.
Each reply carries its source, arrival time and the IP TTL of its packet (forged
packets are built by a box a different number of hops away).

:func:`system_resolve` asks the resolvers in resolv.conf, but speaks DNS itself
(dnspython at the message level, not getaddrinfo or ``Resolver.resolve``) so that
NXDOMAIN, SERVFAIL, REFUSED, an empty answer and a timeout stay distinct.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import sys
import time

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver

from agent.model import failures
from agent.model.observations import DNSExchange, DNSReply, SystemResolution
from agent.net.errors import capture, rcode_failure

# Linux values; Python 3.11's socket module lacks the IPv4 names.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL_CMSG = getattr(socket, "IP_TTL", 2)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT_CMSG = getattr(socket, "IPV6_HOPLIMIT", 52)
MAX_DATAGRAM = 65535
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


def _answers(message: dns.message.Message) -> tuple[tuple[str, ...], int | None]:
    addresses: list[str] = []
    ttls: list[int] = []
    for rrset in message.answer:
        # The answer may hold a CNAME chain; only the address records are the answer.
        if rrset.rdtype in _ADDRESS_TYPES:
            addresses.extend(rdata.address for rdata in rrset)
            ttls.append(rrset.ttl)
    return tuple(addresses), min(ttls) if ttls else None


def _ip_ttl(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if (level, kind) in (
            (socket.IPPROTO_IP, IP_TTL_CMSG),
            (socket.IPPROTO_IPV6, IPV6_HOPLIMIT_CMSG),
        ):
            return int.from_bytes(data[:4], sys.byteorder)
    return None


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


_Datagram = tuple[bytes, list[tuple[int, int, bytes]], tuple[str, int], float]


class _Receiver:
    """Drains a non-blocking UDP socket into a queue; asyncio has no recvmsg of its own."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queue: asyncio.Queue[_Datagram | OSError] = asyncio.Queue()

    def readable(self) -> None:
        while True:
            try:
                data, ancdata, _flags, source = self.sock.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(4)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Handed to the awaiting coroutine, where capture() classifies it.
                self.queue.put_nowait(exc)
                return
            self.queue.put_nowait((data, ancdata, source[:2], time.monotonic()))

    async def next(self, timeout: float) -> _Datagram | None:
        """The next datagram, or None when ``timeout`` passes first."""
        getter = asyncio.ensure_future(self.queue.get())
        done, _pending = await asyncio.wait({getter}, timeout=max(timeout, 0.0))
        if not done:
            getter.cancel()
            return None
        item = getter.result()
        if isinstance(item, OSError):
            raise item
        return item


def _reply(query: dns.message.Message, datagram: _Datagram, start: float) -> DNSReply | None:
    data, ancdata, source, arrived = datagram
    try:
        message = dns.message.from_wire(data)
    except dns.exception.DNSException:
        # Garbage on our port is not a reply to our query; it proves nothing either way.
        return None
    if not query.is_response(message):
        return None
    addresses, answer_ttl = _answers(message)
    return DNSReply(
        source=source[0],
        port=source[1],
        ms=round((arrived - start) * 1000, 1),
        rcode=dns.rcode.to_text(message.rcode()),
        addresses=addresses,
        answer_ttl=answer_ttl,
        ip_ttl=_ip_ttl(ancdata),
    )


async def udp_exchange(
    server: str,
    name: str,
    qtype: str = "A",
    *,
    timeout: float = 2.0,
    window: float = 0.3,
    port: int = 53,
) -> DNSExchange:
    """One query, one datagram; every valid reply until ``window`` after the first."""
    query = dns.message.make_query(name, qtype)
    family = _family(server)
    # Not connect()ed: a forged reply may come from an address other than the server's.
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    loop = asyncio.get_running_loop()
    receiver = _Receiver(sock)
    replies: list[DNSReply] = []
    start = time.monotonic()
    loop.add_reader(sock.fileno(), receiver.readable)
    try:
        with capture() as outcome:
            await loop.sock_sendto(sock, query.to_wire(), (server, port))
            deadline = start + timeout
            while (datagram := await receiver.next(deadline - time.monotonic())) is not None:
                reply = _reply(query, datagram, start)
                if reply is None:
                    continue
                replies.append(reply)
                if len(replies) == 1:
                    deadline = time.monotonic() + window
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
    failure = outcome.failure
    if failure is None and not replies:
        failure = failures.GENERIC_TIMEOUT
    return DNSExchange(
        server=server,
        port=port,
        name=name,
        qtype=qtype,
        replies=tuple(replies),
        ms=round((time.monotonic() - start) * 1000, 1),
        failure=None if replies else failure,
    )


@functools.lru_cache(maxsize=8)
def _resolver_config(resolv_conf: str, mtime_ns: int) -> tuple[tuple[str, ...], int]:
    """Nameservers and port, parsed once per version of the file rather than per query."""
    # dnspython only parses the file here; the queries are ours.
    config = dns.resolver.Resolver(filename=resolv_conf)
    return tuple(str(ns) for ns in config.nameservers), config.port


async def _ask_in_turn(
    query: dns.message.Message, nameservers: tuple[str, ...], port: int, deadline: float
) -> tuple[tuple[str, dns.message.Message] | None, str | None]:
    """The last response with its server, and the last transport failure: the nameservers
    asked in order until one answers other than SERVFAIL or REFUSED, each getting an equal
    share of the time left before ``deadline``."""
    answered: tuple[str, dns.message.Message] | None = None
    failure: str | None = None
    for index, server in enumerate(nameservers):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with capture() as outcome:
            response = await dns.asyncquery.udp(
                query,
                server,
                timeout=remaining / (len(nameservers) - index),
                port=port,
                ignore_unexpected=True,
            )
            answered = (server, response)
        if outcome.failure is not None:
            failure = outcome.failure
            continue
        if response.rcode() not in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
            break
    return answered, failure


async def system_resolve(
    name: str,
    qtype: str = "A",
    *,
    timeout: float = 2.0,
    resolv_conf: str = "/etc/resolv.conf",
) -> SystemResolution:
    """Resolve like the system's stub resolver would, keeping the failure kinds apart.

    Nameservers are tried in order within one overall ``timeout``, each getting an
    equal share of what is left. As glibc does, a SERVFAIL or REFUSED moves on to the
    next server; the last response (or, with none, the last transport failure) counts.
    """
    start = time.monotonic()
    nameservers: tuple[str, ...] = ()
    port = 53
    with capture() as config_outcome:
        nameservers, port = _resolver_config(resolv_conf, os.stat(resolv_conf).st_mtime_ns)
    query = dns.message.make_query(name, qtype)
    answered, failure = await _ask_in_turn(query, nameservers, port, start + timeout)
    # A configuration that failed left no one to ask; else the last server's failure counts.
    failure = config_outcome.failure or failure
    if failure is None and not nameservers:
        failure = failures.unknown(f"no nameservers in {resolv_conf}")
    server_used: str | None = None
    rcode: str | None = None
    addresses: tuple[str, ...] = ()
    answer_ttl: int | None = None
    if answered is not None:
        server_used, response = answered
        addresses, answer_ttl = _answers(response)
        rcode = dns.rcode.to_text(response.rcode())
        failure = rcode_failure(response.rcode(), bool(addresses))
    return SystemResolution(
        name=name,
        qtype=qtype,
        nameservers=nameservers,
        server=server_used,
        rcode=rcode,
        addresses=addresses,
        answer_ttl=answer_ttl,
        ms=round((time.monotonic() - start) * 1000, 1),
        failure=failure,
    )
