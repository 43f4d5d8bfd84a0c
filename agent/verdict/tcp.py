"""Agent verdict, TCP: the first layer of the endpoint walk, where no endpoint connecting is
a verdict and the rest go on to TLS (with a doubt for those that did not, when there is no
control to tell a blocked address from a dead one)."""

from __future__ import annotations

from agent.model import failures as f
from agent.model.measurement import Target, Vantage, Verdict
from agent.verdict.judging import Evidence, Failed, Pair, control_side, doubt, judge

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
        if control is None:
            for pair in pairs:
                if pair.agent.tcp.failure is not None:
                    doubt(doubts, pair.agent.ip, pair.agent.tcp.failure)
        return connected
    failed = []
    for pair in pairs:
        theirs = pair.control.tcp.failure if pair.control is not None else None
        control_ok, control_failure = control_side(pair, control, theirs is None, theirs)
        failed.append(
            Failed(pair.agent.ip, pair.agent.tcp.failure or "", control_ok, control_failure, None)
        )
    return judge(_TCP_KINDS, failed, "ip")
