"""Censor lab: a TCP port on the host's loopback, relayed to a service inside a lab namespace.

The lab is never routed to the host: its namespaces have no link to it. To open the lab
collector's dashboard in a browser on the host (the demo's ``--keep``, the browser tests),
two halves meet at a Unix socket in the lab's state directory, which both namespaces see
because it is a file, not a network address:

- inside the namespace, ``python -m tests.lab.relay SOCKET HOST PORT`` accepts on the socket
  and connects each client on to HOST:PORT there;
- on the host, :class:`Relay` listens on 127.0.0.1 only (nobody else on the network reaches
  it) and hands each connection to that socket.

Bytes are copied as they come, both ways, until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time

from tests.lab.lab import REPO_ROOT, Lab
from tests.lab.shell import LabError, in_ns

__all__ = ["Relay"]

CHUNK = 64 * 1024
START_TIMEOUT = 10.0


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _join(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copies both ways until both directions are done, then closes both ends."""
    try:
        await asyncio.gather(_copy(client[0], server[1]), _copy(server[0], client[1]))
    finally:
        for _, writer in (client, server):
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _inner(socket_path: str, host: str, port: int) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await _join((reader, writer), upstream)

    server = await asyncio.start_unix_server(accept, path=socket_path)
    async with server:
        await server.serve_forever()


class Relay:
    """127.0.0.1:``port`` on the host (0: any free port) to ``host``:``target_port`` in the
    lab namespace of ``role``, until :meth:`stop`. The host half runs on a thread of its own."""

    def __init__(self, lab: Lab, role: str, host: str, target_port: int, port: int = 0) -> None:
        self.lab, self.role, self.host, self.target_port = lab, role, host, target_port
        self.port = port
        self.socket_path = lab.state_dir / f"relay-{role}-{target_port}.sock"
        self._inner: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self.socket_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "tests.lab.relay", str(self.socket_path), self.host]
        self._inner = subprocess.Popen(
            in_ns(self.lab.topo.ns(self.role), [*argv, str(self.target_port)]),
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.socket_path.exists():
            if self._inner.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LabError("the relay into the lab did not start")
            time.sleep(0.05)
        self._thread = threading.Thread(target=self._run, name="lab-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.stop()
            raise LabError(f"the relay could not listen on 127.0.0.1:{self.port}: {self._error}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except OSError as exc:  # the port is taken
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError:
            writer.close()
            return
        await _join((reader, writer), inner)

    def stop(self) -> None:
        if self._thread is not None:
            if self._loop is not None and self._stopping is not None:
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
            self._thread = None
        if self._inner is not None and self._inner.poll() is None:
            self._inner.terminate()
            self._inner.wait(5)
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    socket_path, host, port = sys.argv[1:4]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_inner(socket_path, host, int(port)))
