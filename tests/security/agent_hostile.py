"""Security tests' hostile collector for the agent: a real HTTP server on loopback, in a thread,
that answers every request with what the test sets: an endless body (512 MiB, with or
without a Content-Length), JSON nested deeper than any parser recurses, or a small body.

It counts what it managed to send, so a test can tell an agent that stopped reading at its
cap (the server is stopped by the closed connection, a few MiB of socket buffers later) from
one that read on.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["HUGE", "Answer", "Hostile", "hostile_collector", "nested_json", "rss_bytes"]

HUGE = 512 * 2**20
_CHUNK = b" " * (64 * 1024)  # JSON whitespace: a parser would read it all, and wait for more


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    stream: int = 0  # bytes of whitespace after ``body``, written as long as the peer reads
    declare_length: bool = False  # send a Content-Length covering the stream
    content_type: str = "application/json"


@dataclass
class Hostile:
    url: str
    answer: Answer = field(default_factory=Answer)
    sent: int = 0  # body bytes written for the last request
    requests: int = 0


def nested_json(depth: int = 200_000, inside: bytes = b"") -> bytes:
    """``[[[...]]]`` ``depth`` deep: a few hundred kB, far under any cap, and RecursionError
    for a recursive parser."""
    return b"[" * depth + inside + b"]" * depth


def rss_bytes() -> int:
    """This process's resident set, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _handler(state: Hostile) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.0: a body without a length ends when the connection closes.
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer = state.answer
            state.requests += 1
            state.sent = 0
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            if answer.declare_length or not answer.stream:
                self.send_header("Content-Length", str(len(answer.body) + answer.stream))
            self.end_headers()
            try:
                self.wfile.write(answer.body)
                state.sent += len(answer.body)
                while state.sent - len(answer.body) < answer.stream:
                    self.wfile.write(_CHUNK)
                    state.sent += len(_CHUNK)
            except OSError:
                pass  # the agent hung up: what the tests want

        do_GET = do_POST = _answer

    return Handler


@contextmanager
def hostile_collector() -> Iterator[Hostile]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(Hostile("")))
    server.daemon_threads = True
    state = Hostile(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
