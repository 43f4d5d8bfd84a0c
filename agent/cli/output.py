"""Agent CLI: how ``netsonde-agent probe`` shows and saves its results.

Three sinks, any of which may be active at once:

- human: a rich table (target, verdict, short evidence) and a per-verdict summary line;
- ``--json``: one JSON object per target per line on stdout, written as each result completes;
- ``--msgpack-out FILE``: the wire records (``agent.wire.encode_measurement``) appended one
  after another. msgpack objects are self-delimiting, so no framing is added. Read them back::

      import msgpack
      with open(FILE, "rb") as fh:
          for record in msgpack.Unpacker(fh, raw=False):
              ...

This module formats and writes files only; it never opens a socket. rich and ``agent.wire``
(msgpack) are imported inside the functions that need them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from agent.model import failures
from agent.model.measurement import SiteMeasurement, Target

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "MsgpackSink",
    "evidence_text",
    "print_table",
    "summary_line",
]

EVIDENCE_WIDTH = 100
_VERDICT_STYLES = {"ok": "green", "down": "yellow", "offline": "magenta", "inconclusive": "dim"}


def evidence_text(m: SiteMeasurement) -> str:
    """``trigger=sni fingerprint=...``; for an undecided verdict, why the control was missing."""
    parts = [f"{key}={value}" for key, value in m.verdict.evidence.items()]
    undecided = m.verdict.verdict in ("inconclusive", "offline")
    if undecided and m.control_failure not in (None, failures.NO_CONTROL):
        parts.append(f"control={m.control_failure}")
    text = " ".join(parts)
    return text if len(text) <= EVIDENCE_WIDTH else text[: EVIDENCE_WIDTH - 1] + "…"


def verdict_style(verdict: str) -> str:
    return _VERDICT_STYLES.get(verdict, "bold red")


def summary_line(verdicts: Iterable[str], failed: int = 0) -> str:
    """``12 targets: 9 ok, 2 tls.reset, 1 dns.nxdomain``: most frequent verdict first."""
    counts = Counter(verdicts)
    total = sum(counts.values()) + failed
    parts = [f"{n} {verdict}" for verdict, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]
    if failed:
        parts.append(f"{failed} not measured (internal error)")
    noun = "target" if total == 1 else "targets"
    return f"{total} {noun}: " + (", ".join(parts) if parts else "none measured")


def print_table(console: Console, rows: Iterable[tuple[Target, SiteMeasurement]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("target", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for target, m in rows:
        # Text, not markup strings: URLs and evidence may contain "[...]".
        table.add_row(
            Text(target.url),
            Text(m.verdict.verdict, style=verdict_style(m.verdict.verdict)),
            Text(evidence_text(m)),
        )
    console.print(table)


class MsgpackSink:
    """Appends wire records to an open binary file, flushed per record so a crash loses one."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.records = 0

    def write(self, m: SiteMeasurement) -> None:
        from agent.wire.record import encode_measurement

        self._fh.write(encode_measurement(m))
        self._fh.flush()
        self.records += 1

    def close(self) -> None:
        self._fh.close()
