"""Collector: a trace's verdict in plain words, for ``collector.explain``. Pure: no I/O.

A trace (``agent.verdict.trace``) has the site test's verdict names, but its evidence says
where along the path the censor reacted and how it injects, not what a control saw:
``censor_ttl``, ``after_hop`` (with ``after_hop_asn`` and ``after_hop_as_name`` where the
collector's ASN database knows it, ``collector.traces``), ``reaction``, ``path``,
``injected``, ``injected_ttl`` and ``server_ttl``; or a ``reason``. A router a public view
hides is ``*`` (``collector.traces.HIDDEN``), and the words say so rather than print it.
"""

from __future__ import annotations

from collections.abc import Callable

from collector.traces import HIDDEN

__all__ = ["trace_parts"]

Get = Callable[[str], "str | None"]

# What the trigger was, by the trace's trigger kind.
_SENT = {
    "sni": "a TLS ClientHello naming it",
    "host": "an HTTP request naming it",
    "ip": "a connection to its address",
}
# What the trigger, sent with the normal TTL, met: by the verdict name's last part.
_MET = {
    "reset": "was reset",
    "refused": "was refused with a reset",
    "eof": "was closed right after it was sent",
    "timeout": "got no answer",
    "blockpage": "was answered with a block page",
}
# The reaction where the censor sits (agent.model.trace.REACTIONS).
_REACTION = {
    "rst": "a reset",
    "fin": "a clean close",
    "data": "an answer",
    "none": "silence",
    "unreachable": "an ICMP 'unreachable'",
    "synack": "a SYN-ACK",
}
_PACKET = {"rst": "reset", "fin": "FIN", "data": "answer"}


def _sent(get: Get) -> str:
    return _SENT.get(get("trigger") or "", "the trigger")


def _after(get: Get) -> str:
    after = get("after_hop")
    asn, name = get("after_hop_asn"), get("after_hop_as_name")
    network = f"AS {asn} {name}" if asn and name else f"AS {asn}" if asn else ""
    if after is None:
        return ", and no router below it answered" + (f" ({network})" if network else "")
    if after == HIDDEN:
        shown = f"; {network}" if network else ""
        return f", after a router of the agent's own or a private network (not shown{shown})"
    return f", after router {after}" + (f" ({network})" if network else "")


def _located(get: Get) -> str:
    reaction = _REACTION.get(get("reaction") or "")
    met = f" with {reaction}" if reaction else ""
    return f"the censor reacted at hop {get('censor_ttl')}{met}{_after(get)}"


def _forensics(verdict: str, get: Get) -> str | None:
    path, injected = get("path"), get("injected")
    if path not in ("in", "on"):
        return None
    if injected is None:
        if verdict.endswith(".timeout"):
            return "nothing came back: an in-path box dropped the trigger there"
        return (
            "the injected packet was not captured, so the trace cannot tell an in-path box "
            "from an on-path one"
        )
    kind = _PACKET.get(injected.split(" ", 1)[0], "packet")
    text = f"the injected {kind} carried IP TTL {get('injected_ttl')}"
    if (server := get("server_ttl")) is not None:
        text += f" where the server's packets carry {server}"
    if path == "on":
        return (
            f"{text}: an on-path box, since the server's own answer still arrived after it; "
            "such a box injects but cannot drop"
        )
    return f"{text}: an in-path box, since the server's own answer never came"


def _inconclusive(get: Get) -> list[str]:
    reason = get("reason")
    if reason == "not run":
        return [f"a trace could not run here ({get('failure') or 'unknown'})"]
    if reason == "no connection":
        return [f"a trace could not open the connection that carries {_sent(get)}"]
    if get("censor_ttl") is not None:
        return [
            f"a trace of {_sent(get)} saw that {_located(get)}",
            "but the trigger sent with the normal TTL went through, so the block did not recur",
        ]
    return [f"a trace of {_sent(get)} drew no conclusion" + (f" ({reason})" if reason else "")]


def trace_parts(verdict: str, get: Get) -> list[str]:
    """The clauses that explain a trace's ``verdict``, from its evidence through ``get``
    (a bounded text per key, None when absent)."""
    if verdict == "inconclusive":
        return _inconclusive(get)
    if verdict == "ok":
        return [
            f"a trace sent {_sent(get)} with growing TTLs and then the normal one, and it "
            "went through: the block did not recur on this path"
        ]
    met = _MET.get(verdict.rpartition(".")[2], f"met {verdict}")
    parts = [f"{_sent(get)}, sent with the normal TTL, {met}"]
    if get("censor_ttl") is None:
        parts.append("the trace could not locate the censor: no TTL showed the trigger meeting "
                     "what the benign swap did not")  # fmt: skip
        return parts
    parts.append(f"a trace located it: {_located(get)}")
    if forensics := _forensics(verdict, get):
        parts.append(forensics)
    return parts
