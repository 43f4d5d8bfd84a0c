"""Collector, test list: the configured Citizen Lab CSV that ``GET /api/v1/testlist`` serves.

The file is parsed with the agent's own reader (``agent.wire.testlist``), so the
collector offers exactly the URLs an agent would accept. It is loaded at start and again
when its modification time or size changes; agents poll, so every answer carries an ETag
and ``If-None-Match`` gets a bodiless 304. A reload that fails keeps the last good list.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.wire.testlist import read_test_list

__all__ = ["TestList", "TestListError", "TestListSource", "load_test_list"]

# One log line per load names at most this many bad rows; the rest are only counted.
MAX_LOGGED_PROBLEMS = 10

log = logging.getLogger("netsonde.collector.testlist")


class TestListError(ValueError):
    """A test list that cannot be served at all; the message names the file."""


@dataclass(frozen=True)
class TestList:
    """One loaded version of the file."""

    source: str  # the file's base name: the operator's path stays private
    urls: tuple[str, ...]
    csv: bytes
    digest: str  # of the CSV bytes: both representations change exactly when it does
    problems: tuple[str, ...]
    stamp: tuple[int, int]  # (mtime_ns, size) when read


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def load_test_list(path: Path) -> TestList:
    """Read and parse the list; bad rows are skipped and kept in ``problems``.

    Raises TestListError when the file is unreadable or yields no URL at all.
    """
    try:
        # Stamp first: a write racing the read then shows up as a change on the next check.
        stamp = _stamp(path)
        data = path.read_bytes()
    except OSError as exc:
        raise TestListError(f"{str(path)!r}: cannot read: {exc.strerror or exc}") from None
    targets, problems = read_test_list(path)
    if not targets:
        reason = problems[0] if problems else f"{path}: no URLs"
        raise TestListError(f"{str(path)!r}: no usable URL ({reason})")
    return TestList(
        source=path.name,
        urls=tuple(t.url for t in targets),
        csv=data,
        digest=hashlib.sha256(data).hexdigest()[:32],
        problems=tuple(problems),
        stamp=stamp,
    )


def _report(loaded: TestList) -> None:
    if not loaded.problems:
        log.info("test list %s: %d URLs", loaded.source, len(loaded.urls))
        return
    shown = "; ".join(loaded.problems[:MAX_LOGGED_PROBLEMS])
    more = len(loaded.problems) - MAX_LOGGED_PROBLEMS
    log.warning(
        "test list %s: %d URLs, %d bad rows skipped: %s%s",
        loaded.source,
        len(loaded.urls),
        len(loaded.problems),
        shown,
        f" (and {more} more)" if more > 0 else "",
    )


class TestListSource:
    """The current list of one file, reloaded when the file changes."""

    def __init__(self, path: Path, loaded: TestList) -> None:
        self.path = path
        self.current = loaded
        self._lock = asyncio.Lock()
        self._failed_stamp: tuple[int, int] | None = None

    @classmethod
    def open(cls, path: Path) -> TestListSource:
        loaded = load_test_list(path)
        _report(loaded)
        return cls(path, loaded)

    async def get(self) -> TestList:
        """The list, re-read first if the file changed since it was loaded.

        The check is one stat() per request, cheap enough for the loop; the re-read goes to
        a thread. A file that vanished or no longer parses is reported once per version,
        and the last good list is served meanwhile.
        """
        try:
            stamp = _stamp(self.path)
        except OSError as exc:
            if self._failed_stamp != (0, 0):
                self._failed_stamp = (0, 0)
                reason = exc.strerror or exc
                log.warning("test list %s: cannot stat it: %s", self.path.name, reason)
            return self.current
        if stamp in (self.current.stamp, self._failed_stamp):
            return self.current
        async with self._lock:
            if stamp in (self.current.stamp, self._failed_stamp):  # another request reloaded
                return self.current
            try:
                loaded = await asyncio.to_thread(load_test_list, self.path)
            except TestListError as exc:
                self._failed_stamp = stamp
                log.warning("test list reload failed, serving the last good list: %s", exc)
                return self.current
            self._failed_stamp = None
            _report(loaded)
            self.current = loaded
        return self.current
