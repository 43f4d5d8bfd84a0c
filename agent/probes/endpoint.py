"""Agent probes: everything measured against one IP of a target.

TCP connect, then for https a TLS handshake naming the host (with the SNI swap
when it fails), then an HTTP GET over the first connection that worked (with
the Host swap for http targets when the request is cut).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.model.observations import EndpointObservation, Inspector
from agent.net import tls as net_tls
from agent.net.http import round_trip
from agent.net.tcp import connect
from agent.probes import http, tls


@dataclass(frozen=True)
class EndpointPlan:
    scheme: str
    host: str
    port: int
    path: str
    benign_name: str
    ca_file: str | None
    timeout: float
    inspect: Inspector | None


async def measure(ip: str, plan: EndpointPlan) -> EndpointObservation:
    tcp_obs, stream = await connect(ip, plan.port, timeout=plan.timeout)
    if stream is None:
        return EndpointObservation(ip=ip, port=plan.port, tcp=tcp_obs)
    if plan.scheme == "https":
        handshake, tls_stream = await net_tls.handshake(
            stream, plan.host, ca_file=plan.ca_file, timeout=plan.timeout
        )
        if tls_stream is None:
            benign = await tls.benign_handshake(
                ip, plan.port, plan.benign_name, ca_file=plan.ca_file, timeout=plan.timeout
            )
            return EndpointObservation(
                ip=ip, port=plan.port, tcp=tcp_obs, tls=handshake, tls_benign=benign
            )
        response = await round_trip(
            tls_stream, plan.host, plan.path, timeout=plan.timeout, inspect=plan.inspect
        )
        return EndpointObservation(ip=ip, port=plan.port, tcp=tcp_obs, tls=handshake, http=response)
    response = await round_trip(
        stream, plan.host, plan.path, timeout=plan.timeout, inspect=plan.inspect
    )
    swapped = None
    # A cut request or a blockpage: does a benign Host to the same IP fare better?
    if (response.status is None and response.failure in http.CUT) or response.fingerprint:
        swapped = await http.benign_fetch(ip, plan.port, plan.benign_name, timeout=plan.timeout)
    return EndpointObservation(
        ip=ip, port=plan.port, tcp=tcp_obs, http=response, http_benign=swapped
    )
