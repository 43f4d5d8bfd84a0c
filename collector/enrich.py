"""Collector, enrichment: the agent's address becomes an ASN, an AS name and a country.

The databases are MaxMind-format files (GeoLite2, DB-IP lite, ...), given as ``--geoip PATH``
once or several times: a combined database, or separate ASN and country databases. Each
field is taken from the first database that has it, so the two layouts need no flags of
their own. The keys read are ``autonomous_system_number``, ``autonomous_system_organization``
and ``country.iso_code`` (``registered_country.iso_code`` when a range has no country).

The client's address is only ever an argument here: nothing in this module stores or logs
it, and the caller drops it after the lookup. Only the ASN and country reach the storage.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import maxminddb
from aiohttp import web

__all__ = [
    "EnrichError",
    "Enricher",
    "IPNetwork",
    "Network",
    "client_address",
]

log = logging.getLogger("netsonde.collector.enrich")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EnrichError(ValueError):
    """A database that cannot be opened; the message names the file and says why."""


@dataclass(frozen=True)
class Network:
    """What an address tells about the agent's network; None where no database knows."""

    asn: int | None = None
    as_name: str | None = None
    cc: str | None = None


class Enricher:
    """The opened databases; with none, every lookup is an empty :class:`Network`.

    Lookups run on the event loop: MODE_AUTO maps the file into memory (the C reader, or
    the whole file read in the pure Python one), and a lookup is a walk of at most 128 tree
    nodes plus one record decode, a few microseconds. Handing that to a thread would cost
    more than the lookup itself.
    """

    def __init__(self, readers: Sequence[maxminddb.Reader] = ()) -> None:
        self._readers = tuple(readers)

    @classmethod
    def open(cls, paths: Sequence[str]) -> Enricher:
        """Open every database or none: a bad file raises EnrichError naming it."""
        readers: list[maxminddb.Reader] = []
        try:
            for path in paths:
                readers.append(_open_database(path))
        except EnrichError:
            for reader in readers:
                reader.close()
            raise
        return cls(readers)

    def lookup(self, ip: str | None) -> Network:
        if ip is None or not self._readers:
            return Network()
        try:
            address = _plain(ipaddress.ip_address(ip))
        except ValueError:
            return Network()
        asn: int | None = None
        as_name: str | None = None
        cc: str | None = None
        for reader in self._readers:
            record = _get(reader, address)
            if record is None:
                continue
            if asn is None:
                asn = _asn(record.get("autonomous_system_number"))
                name = record.get("autonomous_system_organization")
                as_name = name if isinstance(name, str) and asn is not None else as_name
            if cc is None:
                cc = _country(record)
        return Network(asn=asn, as_name=as_name, cc=cc)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = ()


def _open_database(path: str) -> maxminddb.Reader:
    # Checked first: the C reader reports a directory or an unreadable file as corrupt.
    if os.path.isdir(path):
        raise EnrichError(f"{path!r}: is a directory, not a database file")
    if os.path.exists(path) and not os.access(path, os.R_OK):
        raise EnrichError(f"{path!r}: not readable (permission denied)")
    try:
        return maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except FileNotFoundError:
        raise EnrichError(f"{path!r}: no such file") from None
    except PermissionError:
        raise EnrichError(f"{path!r}: not readable (permission denied)") from None
    except OSError as exc:
        raise EnrichError(f"{path!r}: cannot read: {exc.strerror or exc}") from None
    except (maxminddb.InvalidDatabaseError, ValueError) as exc:
        # ValueError: the C reader's refusal of an empty or truncated file.
        raise EnrichError(f"{path!r}: not a MaxMind (mmdb) database: {exc}") from None


def _get(reader: maxminddb.Reader, address: IPAddress) -> Mapping[str, Any] | None:
    try:
        record = reader.get(address)
    except ValueError:  # an IPv6 address asked of an IPv4-only database
        return None
    except maxminddb.InvalidDatabaseError as exc:
        # A file corrupt past its header: one bad range must not fail the upload.
        log.warning("geoip database corrupt: %s", exc)
        return None
    return record if isinstance(record, Mapping) else None


def _asn(value: object) -> int | None:
    # bool is an int to Python, never an AS number.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32:
        return value
    return None


def _country(record: Mapping[str, Any]) -> str | None:
    for key in ("country", "registered_country"):
        section = record.get(key)
        if isinstance(section, Mapping):
            code = section.get("iso_code")
            if isinstance(code, str) and len(code) == 2 and code.isalpha():
                return code.upper()
    return None


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (a dual-stack socket's view of IPv4) as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_hop(text: str) -> IPAddress | None:
    """One X-Forwarded-For entry, or None when it is not an address.

    Besides bare addresses, proxies write ``[v6]:port`` and ``v4:port``; ``unknown`` and
    obfuscated identifiers (RFC 7239) are not addresses and are skipped.
    """
    entry = text.strip()
    if entry.startswith("["):
        entry, sep, _ = entry[1:].partition("]")
        if not sep:
            return None
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    try:
        return _plain(ipaddress.ip_address(entry))
    except ValueError:
        return None


def client_address(request: web.BaseRequest, trusted_proxies: Sequence[IPNetwork]) -> str | None:
    """The agent's address: the TCP peer, unless the peer is a trusted proxy.

    Then X-Forwarded-For is walked from the right, skipping trusted proxies; the first
    address that is not one is the client (anything to its left was written by the client
    and proves nothing). If every hop is trusted, the leftmost is the client. An untrusted
    peer's header is ignored: anyone can send one. None for a peer with no IP (UNIX socket).
    """
    peer_text = request.remote
    if peer_text is None:
        return None
    try:
        peer = _plain(ipaddress.ip_address(peer_text))
    except ValueError:
        return None
    if not _trusted(peer, trusted_proxies):
        return str(peer)
    client = peer
    for header in reversed(request.headers.getall("X-Forwarded-For", [])):
        for entry in reversed(header.split(",")):
            hop = _parse_hop(entry)
            if hop is None:
                continue
            client = hop
            if not _trusted(hop, trusted_proxies):
                return str(hop)
    return str(client)


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)
