"""Upload's pure logic: backoff bounds and growth, URL rotation, Retry-After, and records
that are dropped without asking the collector."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.daemon.backoff import Backoff, parse_retry_after
from agent.daemon.upload import REVOKED, UNAUTHORIZED, UNREACHABLE, Uploader


def test_full_jitter_stays_within_the_growing_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=900.0, rng=random.Random(7))
    for n in range(20):
        ceiling = min(900.0, 2.0**n)
        samples = []
        for _ in range(50):
            backoff.attempts = n
            samples.append(backoff.next_delay())
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(samples) < ceiling / 4
        assert max(samples) > ceiling * 3 / 4


def test_attempts_grow_and_reset() -> None:
    backoff = Backoff(base=0.5, cap=10.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(100)]
    assert backoff.attempts == 100
    assert all(d <= 10.0 for d in delays)
    assert max(delays[:3]) <= 2.0  # 0.5, 1, 2
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() <= 0.5


def test_same_seed_same_delays() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]


def test_no_overflow_after_very_many_failures() -> None:
    backoff = Backoff(base=1.0, cap=900.0, rng=random.Random(3))
    backoff.attempts = 10_000
    assert 0.0 <= backoff.next_delay() <= 900.0


def test_every_url_once_before_sleeping_and_the_cap_for_what_the_operator_must_fix() -> None:
    backoff = Backoff(base=1.0, cap=900.0, rng=random.Random(5))
    assert [backoff.after(UNREACHABLE, n, 3, 0.0) for n in (1, 2)] == [0.0, 0.0]
    assert backoff.attempts == 0
    assert 0.0 <= backoff.after(UNREACHABLE, 3, 3, 0.0) <= 1.0
    assert backoff.attempts == 1
    assert backoff.after(UNAUTHORIZED, 1, 3, 0.0) == backoff.after(REVOKED, 1, 3, 0.0) == 900.0
    assert backoff.after(UNREACHABLE, 1, 3, 30.0) == 30.0  # Retry-After, at least
    assert backoff.after(UNREACHABLE, 1, 3, 5000.0) == 900.0  # but never past the cap


def _uploader(urls: list[str]) -> Uploader:
    return Uploader(urls, "ag-test", Ed25519PrivateKey.generate(), next_seq=lambda: 1)


def test_rotation_order_wraps_around() -> None:
    uploader = _uploader(["https://a.example/", "https://b.example", "https://c.example"])
    assert uploader.current_url == "https://a.example"
    assert [uploader.rotate() for _ in range(4)] == [
        "https://b.example",
        "https://c.example",
        "https://a.example",
        "https://b.example",
    ]
    single = _uploader(["https://only.example"])
    assert single.rotate() == single.current_url == "https://only.example"


def test_needs_a_url() -> None:
    with pytest.raises(ValueError, match="collector URL"):
        _uploader([])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("0", 0.0), (None, 0.0), ("soon", 0.0), ("-5", 0.0), ("1e9", 0.0),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after(value: str | None, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@dataclass(frozen=True)
class _Entry:
    seq: int
    id: str
    record: bytes


class _Spool:
    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries

    async def peek_async(self, limit: int) -> list[_Entry]:
        return self.entries[:limit]

    async def ack_async(self, ids: Sequence[str]) -> None:
        self.entries = [e for e in self.entries if e.id not in set(ids)]

    async def evictions_async(self) -> int:
        return 0

    async def backlog_async(self) -> tuple[int, int]:
        return len(self.entries), 0

    async def peek_checks_async(self, limit: int) -> list[tuple[int, bool]]:
        return []  # no connectivity checks: a heartbeat-only batch would be a request

    async def ack_checks_async(self, times: Sequence[int]) -> None:
        raise AssertionError("no checks to acknowledge")

    async def goodput_async(self, times: Sequence[int]) -> dict[int, int]:
        return {}


@pytest.mark.asyncio
async def test_corrupt_records_are_dropped_without_a_request() -> None:
    # Outside 'async with': any request would raise, so none is made.
    spool = _Spool([_Entry(1, "x1", b"\xc1garbage"), _Entry(2, "x2", b"")])
    result = await _uploader(["http://127.0.0.1:9"]).upload_once(spool)
    assert (result.sent, result.acknowledged, result.failure) == (0, 0, None)
    assert result.dropped == ["x1", "x2"]
    assert spool.entries == []
    empty = await _uploader(["http://127.0.0.1:9"]).upload_once(spool)
    assert (empty.sent, empty.dropped, empty.failure) == (0, [], None)
