"""Agent CLI: the blockpage fingerprints ``probe`` measures with.

``--fingerprints FILE`` (repeatable) wins: those files and nothing else. Without it, and
with ``--collector``, the collector's set (``GET /api/v1/fingerprints``, parsed by the one
loader, ``agent.fingerprints``); when the collector cannot give it, the copy the daemon
cached in ``--state-dir`` (``agent.daemon.fingerprints``), if this user may read it. A
missing set never stops a run: blockpage matching only sharpens the verdicts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp

    from agent.api.fingerprints import FingerprintsAnswer
    from agent.fingerprints import FingerprintSet

__all__ = ["from_collector", "load_local"]

Say = Callable[[str, str], None]  # kind ("warning"), message: how the command reports


def _problems(problems: tuple[str, ...] | list[str], say: Say) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        say("warning", f"skipped {len(problems)} malformed fingerprint rows: {problems[0]}{more}")


def load_local(paths: list[str], say: Say) -> FingerprintSet | None:
    """The ``--fingerprints`` files; one that cannot be read is skipped with a warning."""
    from agent.fingerprints import FingerprintFileError, FingerprintSet, load

    loaded: list[FingerprintSet] = []
    for path in paths:
        # One file at a time, so a missing one costs only its own fingerprints.
        try:
            loaded.append(load([Path(path)]))
        except FingerprintFileError as exc:
            say("warning", f"{exc}; continuing without it")
    if not loaded:
        return None
    problems = [p for s in loaded for p in s.problems]
    _problems(problems, say)
    return FingerprintSet([fp for s in loaded for fp in s.fingerprints], problems)


async def from_collector(
    session: aiohttp.ClientSession | None, collector_url: str, state_dir: Path, say: Say
) -> FingerprintSet | None:
    """The collector's fingerprints (``session`` None: it did not answer), else the daemon's
    cached copy, else None (said once)."""
    from agent.api.fingerprints import fetch_fingerprints
    from agent.daemon.fingerprints import FINGERPRINTS_CACHE, read_fingerprints_cache

    answer: FingerprintsAnswer | str = "unreachable"
    if session is not None:
        answer = await fetch_fingerprints(session, [collector_url], None)
    if not isinstance(answer, str):
        _problems(answer.fingerprints.problems, say)
        return answer.fingerprints or None
    cached = None
    # Checked first: the daemon's state is often not this user's to read, which is no news.
    if os.access(state_dir / FINGERPRINTS_CACHE, os.R_OK):
        cached = await asyncio.to_thread(read_fingerprints_cache, state_dir)
    if cached is None:
        say("warning", f"no blockpage fingerprints from the collector ({answer})")
        return None
    say("warning", f"using the fingerprints the daemon cached in {state_dir} (collector: {answer})")
    return cached.fingerprints or None
