"""Censor lab: a userspace packet verdict over netfilter's NFQUEUE, in the standard library.

An iptables rule ``-j NFQUEUE --queue-num N`` hands each matching packet to the process bound
to queue N, which answers accept or drop; ``--queue-bypass`` lets packets through while no
process is bound. This speaks the nfnetlink_queue protocol on a netlink socket directly
(linux/netfilter/nfnetlink_queue.h), since what the lab's QUIC censor must read, an SNI
inside an encrypted QUIC Initial, no iptables match can.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

__all__ = ["NfQueue"]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr, host order
_GENMSG = struct.Struct("!BBH")  # nfgenmsg: family, version, queue number (network order)
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    data = _ATTR.pack(_ATTR.size + len(payload), kind) + payload
    return data + b"\x00" * (-len(data) % 4)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, at)
        if length < _ATTR.size:
            return
        yield kind & 0x3FFF, data[at + _ATTR.size : at + length]
        at += (length + 3) & ~3


STOP_POLL = 0.1  # seconds: how soon run() sees close()


class NfQueue:
    """One bound queue: :meth:`run` calls ``decide(ip packet) -> accept?`` for each packet."""

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.seq = 0
        self.closing = False
        # Bind to the queue, then copy whole packets (up to 64 KiB) to this process.
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET)))

    def _send(self, kind: int, body: bytes, flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        message_type = (NFNL_SUBSYS_QUEUE << 8) | kind
        genmsg = _GENMSG.pack(socket.AF_UNSPEC, 0, self.queue)
        payload = genmsg + body
        self.sock.send(_HEADER.pack(_HEADER.size + len(payload), message_type, flags, self.seq, 0)
                       + payload)  # fmt: skip

    def _config(self, body: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, body, NLM_F_REQUEST | NLM_F_ACK)
        data = self.sock.recv(65536)
        _length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", data, _HEADER.size)
            if error != 0:
                raise OSError(-error, f"nfnetlink_queue config refused: {-error}")

    def verdict(self, packet_id: int, accept: bool) -> None:
        body = _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP,
                                                   packet_id))  # fmt: skip
        self._send(NFQNL_MSG_VERDICT, body)

    def run(self, decide: Callable[[bytes], bool]) -> None:
        """Until :meth:`close`: each queued packet, decided. Closing a socket does not wake a
        thread blocked in its ``recv``, so the wait is cut into short slices."""
        self.sock.settimeout(STOP_POLL)
        while not self.closing:
            try:
                data = self.sock.recv(262144)
            except TimeoutError:
                continue
            except OSError:
                return
            at = 0
            while at + _HEADER.size <= len(data):
                length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, at)
                if length < _HEADER.size:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    self._packet(data[at + _HEADER.size + _GENMSG.size : at + length], decide)
                at += (length + 3) & ~3

    def _packet(self, body: bytes, decide: Callable[[bytes], bool]) -> None:
        packet_id, payload = None, b""
        for kind, value in _attrs(body):
            if kind == NFQA_PACKET_HDR:
                packet_id = struct.unpack_from("!I", value)[0]
            elif kind == NFQA_PAYLOAD:
                payload = value
        if packet_id is not None:
            self.verdict(packet_id, decide(payload))

    def close(self) -> None:
        self.closing = True
        self.sock.close()
