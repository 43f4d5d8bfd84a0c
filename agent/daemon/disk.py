"""Agent daemon: the state directory's disk, and what the daemon does when it is full.

A full disk must neither stop the daemon (systemd would restart it into the same disk until
its start limit gives up) nor flood the log with a traceback per result. So:

- the spool is opened once there is room (:func:`open_spool`): at start on a full disk the
  daemon logs once and tries again every :data:`WAIT_POLL` seconds;
- a measure run starts only with :data:`MIN_FREE_BYTES` free (:meth:`Disk.room`, one
  ``statvfs``), and a run stops at its first result the spool cannot store: measuring is
  paused until space returns, with one message;
- writes that fail meanwhile are counted (:meth:`Disk.failed`), not logged one by one, and
  the count goes to the spool's meta (``write_failures_total``) once writes work again;
- uploads go on: they write nothing before sending, and the spool's deletes have a reserve
  of their own (``agent.daemon.spoolfile``), so the spool still empties into the collector.

Standard library only, like everything lean mode imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent.daemon.enrollment import DaemonError
from agent.daemon.spool import Spool, SpoolError, SpoolFull
from agent.daemon.spoolfile import fill_reserve, release_reserve
from agent.daemon.state import META_WRITE_FAILURES, SPOOL_FILE

if TYPE_CHECKING:
    from agent.daemon.config import AgentConfig

__all__ = ["MIN_FREE_BYTES", "WAIT_POLL", "Disk", "free_bytes", "open_spool"]

log = logging.getLogger("netsonde.agent")

# A measure run starts only with this much free: a 670-target run spools about 2 MB, and
# its log, the spool's reserve and the rest of the system need room too.
MIN_FREE_BYTES = 8 * 2**20
WAIT_POLL = 5.0  # seconds between tries to open the spool on a full disk


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged process may still write under ``directory``; None if unknown."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class Disk:
    """Whether the state directory's disk is full, as the daemon last found it, and how many
    spool writes failed since that was last stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.full = False
        self.failures = 0

    def room(self) -> bool:
        """Whether a measure run may start; the first no pauses measuring, with one message."""
        free = free_bytes(self.directory)
        if free is None or free >= MIN_FREE_BYTES:
            return True
        self._pause(f"{free} bytes free in {self.directory}, under {MIN_FREE_BYTES}")
        return False

    def failed(self, exc: SpoolFull, what: str) -> None:
        """A spool write of ``what`` failed for lack of room: counted, logged only if it is
        the first since the disk last had room."""
        self.failures += 1
        self._pause(f"{what} not stored: {exc}")

    def _pause(self, why: str) -> None:
        if not self.full:
            self.full = True
            log.error(
                "disk full (%s): measuring paused until %d MB are free; uploads go on",
                why, MIN_FREE_BYTES // 2**20,
            )  # fmt: skip

    def blocks_measuring(self, spool: Spool) -> bool:
        """Whether a measure run must not start: the disk was full and still is, or has
        under :data:`MIN_FREE_BYTES` free. Writes: call in a thread."""
        if self.full:
            return not self.recovered(spool)
        return not self.room()

    def recovered(self, spool: Spool) -> bool:
        """After a pause: True once there is room again, the failed writes then counted in
        the spool; False while there is not (or there was no pause). Writes: call in a
        thread."""
        free = free_bytes(self.directory)
        if not self.full or (free is not None and free < MIN_FREE_BYTES):
            return False
        try:
            if self.failures:
                spool.bump_meta(META_WRITE_FAILURES, self.failures)
        except SpoolFull:
            return False  # room by statvfs, not yet for SQLite: next time
        log.info(
            "disk has room again (%s bytes free): measuring resumes; %d spool writes failed",
            free, self.failures,
        )  # fmt: skip
        self.full, self.failures = False, 0
        return True


async def open_spool(config: AgentConfig, stop: asyncio.Event) -> Spool | None:
    """The spool, opened once the disk has room for it (its -shm index, a recovered log):
    on a full disk, one message, then a try every :data:`WAIT_POLL` seconds. None if
    ``stop`` is set first. Raises DaemonError if the spool is unusable for another reason."""
    path = config.state_dir / SPOOL_FILE
    waiting = False
    while True:
        try:
            spool = await asyncio.to_thread(Spool.open, path, max_bytes=config.limits.spool_size)
            # Here, not in Spool.open: ``status`` opens the spool too, and must not write.
            await asyncio.to_thread(fill_reserve, path)
            return spool
        except SpoolFull as exc:
            if not waiting:
                log.error("disk full, cannot open the spool (%s): waiting for space", exc)
                waiting = True
                # The reserve is for this too: the index SQLite must create to open the file.
                release_reserve(path)
                continue
        except SpoolError as exc:
            raise DaemonError(str(exc)) from exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAIT_POLL)
            return None
