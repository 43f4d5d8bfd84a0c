"""Agent verdict, TCP: the first layer of the endpoint walk, where no endpoint connecting is
a verdict and the rest go on to TLS."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.verdict.judging import Evidence, Failed, Pair, judge

# fmt: off
# An ICMP unreachable answering a SYN is an active refusal, like a RST (iptables REJECT).
_TCP_KINDS = {
    f.GENERIC_TIMEOUT: "tcp.timeout", f.CONNECTION_RESET: "tcp.reset",
    f.CONNECTION_ABORTED: "tcp.reset", f.CONNECTION_REFUSED: "tcp.refused",
    f.HOST_UNREACHABLE: "tcp.refused", f.NETWORK_UNREACHABLE: "tcp.refused",
}
# fmt: on


def layer(
    target: Target, pairs: list[Pair], control: Vantage | None, doubts: list[Evidence]
) -> Verdict | list[Pair]:
    connected = [p for p in pairs if p.agent.tcp.failure is None]
    if connected:
        return connected
    failed = [
        Failed(
            p.agent.ip,
            p.agent.tcp.failure or "",
            None if p.control is None else p.control.tcp.failure is None,
            None if p.control is None else p.control.tcp.failure,
            None,
        )
        for p in pairs
    ]
    return judge(_TCP_KINDS, failed, "ip")
