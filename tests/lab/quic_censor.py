"""Censor lab: drops QUIC Initials whose ClientHello names a blocked domain, as the Great
Firewall has done since 2024.

Runs in a censor hop; the hop's iptables sends it UDP packets shaped like a QUIC v1 long
header (``tests.lab.protocol_censors``) through NFQUEUE (``tests.lab.nfqueue``). It decrypts
each Initial with the keys its Destination Connection ID gives (``tests.lab.quicsni``) and
drops it if the SNI is a blocked domain or under one; everything else passes, whatever its
destination, as a name-keyed censor does.

Config: {"queue": 7, "domains": ["telegram.org"]}
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.lab.nfqueue import NfQueue
from tests.lab.quicsni import initial_sni
from tests.lab.service import Cleanup, run_service

__all__ = ["blocked", "udp_payload"]


def udp_payload(packet: bytes) -> bytes | None:
    """The UDP payload of an IPv4 packet, None for anything else."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    return packet[(packet[0] & 0x0F) * 4 + 8 :]


def blocked(packet: bytes, domains: frozenset[str]) -> bool:
    payload = udp_payload(packet)
    sni = initial_sni(payload) if payload is not None else None
    if sni is None:
        return False
    name = sni.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)


async def start(config: dict[str, Any]) -> Cleanup:
    domains = frozenset(str(d).lower() for d in config["domains"])
    queue = NfQueue(int(config["queue"]))
    thread = threading.Thread(
        target=queue.run, args=(lambda packet: not blocked(packet, domains),), daemon=True
    )
    thread.start()

    async def cleanup() -> None:
        queue.close()
        await asyncio.to_thread(thread.join, 2.0)

    return cleanup


if __name__ == "__main__":
    run_service(start)
