"""Agent daemon, spool counters: the totals ``netsonde-agent status`` shows (made,
acknowledged, evicted) and the bandwidth usage move with the records they count."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.daemon.spool import Spool, SpoolError


def test_totals_follow_add_ack_and_eviction(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool.db", max_bytes=250) as spool:
        assert spool.totals() == {"spooled": 0, "acked": 0, "evicted": 0, "waiting": 0}
        for i in range(3):
            spool.add(b"x" * 100, f"id-{i}", i, usage=("bandwidth_2026-01-01", 1000))
        spool.add(b"x" * 100, "id-2", 2, usage=("bandwidth_2026-01-01", 1000))  # a repeat
        # 300 bytes in a 250-byte spool: the oldest went.
        assert spool.totals() == {"spooled": 3, "acked": 0, "evicted": 1, "waiting": 2}
        # Usage only counts records actually added, in their transaction.
        assert spool.get_meta("bandwidth_2026-01-01") == 3000
        assert spool.ack(["id-0", "id-1", "id-2", "never-there"]) == 2
        assert spool.ack(["id-1"]) == 0  # acknowledged twice counts once
        totals = spool.totals()
        assert totals == {"spooled": 3, "acked": 2, "evicted": 1, "waiting": 0}
        assert totals["spooled"] == totals["acked"] + totals["evicted"] + totals["waiting"]
    with Spool.open(tmp_path / "spool.db", max_bytes=250) as spool:  # persisted
        assert spool.totals()["acked"] == 2


def test_meta_counters_and_reserved_keys(tmp_path: Path) -> None:
    with Spool.open(tmp_path / "spool.db", max_bytes=10**6) as spool:
        assert spool.bump_meta("runs_total", 1) == 1
        assert spool.bump_meta("runs_total", 2) == 3
        spool.set_meta("bandwidth_2026-01-01", 5)
        spool.set_meta("bandwidth_2026-01-02", 7)
        assert sorted(spool.meta_keys("bandwidth_")) == [
            "bandwidth_2026-01-01",
            "bandwidth_2026-01-02",
        ]
        spool.delete_meta("bandwidth_2026-01-01")
        assert spool.meta_keys("bandwidth_") == ["bandwidth_2026-01-02"]
        for key in ("spooled_total", "acked_total", "evictions"):
            with pytest.raises(SpoolError, match="maintained by the spool"):
                spool.bump_meta(key, 1)
