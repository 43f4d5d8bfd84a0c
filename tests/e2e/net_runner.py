"""Run one agent layer-1 primitive and print its observations as JSON.

Executed inside a lab namespace (``ip netns exec NS python -m
tests.e2e.net_runner OP JSON-ARGS``), because the primitives must open their
sockets there. Tests may import agent code; agent code never imports this.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from agent.net import dns, http, tcp, tls
from agent.net.route import has_route


async def dns_udp(server: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return {"dns": dataclasses.asdict(await dns.udp_exchange(server, name, **kwargs))}


async def system_resolve(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"dns": dataclasses.asdict(await dns.system_resolve(name, **kwargs))}


async def tcp_connect(ip: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    observation, stream = await tcp.connect(ip, port, timeout=timeout)
    if stream is not None:
        stream.close()
    return {"tcp": dataclasses.asdict(observation)}


async def tls_handshake(
    ip: str, sni: str, ca_file: str | None = None, timeout: float = 2.0
) -> dict[str, Any]:
    connected, stream = await tcp.connect(ip, 443, timeout=timeout)
    result: dict[str, Any] = {"tcp": dataclasses.asdict(connected)}
    if stream is not None:
        shaken, secure = await tls.handshake(stream, sni, ca_file=ca_file, timeout=timeout)
        result["tls"] = dataclasses.asdict(shaken)
        if secure is not None:
            secure.close()
    return result


async def http_get(
    ip: str,
    host: str,
    path: str = "/",
    sni: str | None = None,
    ca_file: str | None = None,
    timeout: float = 2.0,
    max_body: int = http.MAX_BODY,
) -> dict[str, Any]:
    connected, stream = await tcp.connect(ip, 80 if sni is None else 443, timeout=timeout)
    result: dict[str, Any] = {"tcp": dataclasses.asdict(connected)}
    channel: tcp.Stream | None = stream
    if stream is not None and sni is not None:
        shaken, channel = await tls.handshake(stream, sni, ca_file=ca_file, timeout=timeout)
        result["tls"] = dataclasses.asdict(shaken)
    if channel is not None:
        fetched = await http.round_trip(channel, host, path, max_body=max_body, timeout=timeout)
        result["http"] = dataclasses.asdict(fetched)
    return result


async def route(ip: str) -> dict[str, Any]:
    return {"route": has_route(ip)}


OPS: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "dns_udp": dns_udp,
    "system_resolve": system_resolve,
    "tcp": tcp_connect,
    "tls": tls_handshake,
    "http": http_get,
    "route": route,
}


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in OPS:
        raise SystemExit(f"usage: python -m tests.e2e.net_runner {{{','.join(OPS)}}} JSON")
    print(json.dumps(asyncio.run(OPS[sys.argv[1]](**json.loads(sys.argv[2])))))


if __name__ == "__main__":
    main()
