"""Collector, ingest fuzzing: malformed, truncated, bit-flipped, oversized, forged and
validly signed but invalid batches, through the real app on SQLite.

Whatever arrives, the answer is a 4xx with a JSON error (never a 5xx) and the database does
not change. The harness and the strategies are shared with ``benchmarks/fuzz_ingest.py``,
which runs the same property for thousands of cases; CI runs a modest number.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from agent.api.paths import MEASUREMENTS_PATH
from agent.wire.batch import MAX_CHECKS, SIGNATURE_DOMAIN, encode_batch
from agent.wire.record import measurement_to_obj
from collector.config import Settings
from collector.storage.schema import connectivity
from collector.web.app import create_app
from collector.web.keys import STORAGE
from tests.collector.app_client import enrolled, recent

_T = TypeVar("_T")
DAY_MS = 86_400_000
# Small, so oversized bodies are cheap to generate; the limit logic does not depend on it.
FUZZ_MAX_BODY = 64 * 1024
# Any msgpack value: integers within its range (anything wider cannot even be packed).
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    content_type: str | None = "application/msgpack"
    chunked: bool = False  # no Content-Length: the size cap must hold while reading


class Harness:
    """The real app on SQLite, served by an event loop on a thread of its own, so the
    synchronous hypothesis test can drive it and read the storage between requests."""

    def __init__(self, db_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = Settings(
            db_url=f"sqlite:///{db_path}",
            max_batch_request_bytes=FUZZ_MAX_BODY,
            # The rate limit would turn validly signed cases into 429s and hide their errors.
            ingest_rate=1e9,
            ingest_burst=1_000_000_000,
        )
        self.client: TestClient[web.Request, web.Application] = self.run(self._start(settings))
        self.storage = self.client.app[STORAGE]
        self.agent_id, self.key = self.run(enrolled(self.client))
        # Stored once, so the snapshot below has rows and rollups a bad request could touch.
        now = int(time.time() * 1000)
        first = encode_batch(self.agent_id, 0, recent(5), self.key, checks=[(now - 60_000, True)])
        assert self.post(Case("setup", first))[0] == 200
        # Never uploaded: a fuzzed copy that got in would show as a change.
        self.valid = encode_batch(self.agent_id, 1, recent(3), self.key,
                                  checks=[(now - 30_000, False), (now - 20_000, True)])  # fmt: skip
        self.baseline = self.snapshot()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    async def _start(self, settings: Settings) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(create_app(settings))
        )
        await client.start_server()
        return client

    def snapshot(self) -> tuple[int, dict[Any, int], int]:
        with self.storage.engine.connect() as conn:
            checks = conn.execute(select(func.count()).select_from(connectivity)).scalar_one()
        return self.storage.count_measurements(), self.storage.rollup_counts(), checks

    def post(self, case: Case) -> tuple[int, Any]:
        """The status and the JSON body (None when the body is not JSON)."""

        async def send() -> tuple[int, Any]:
            headers = {} if case.content_type is None else {"Content-Type": case.content_type}
            data: Any = case.body
            if case.chunked:

                async def chunks() -> AsyncIterator[bytes]:
                    for start in range(0, len(case.body), 16 * 1024):
                        yield case.body[start : start + 16 * 1024]

                data = chunks()
            response = await self.client.post(MEASUREMENTS_PATH, data=data, headers=headers)
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, None

        return self.run(send())

    def check(self, case: Case) -> tuple[int, Any]:
        """The property, for one case; returns the status and the JSON body."""
        status, body = self.post(case)
        assert status < 500, (case.kind, status, body)
        if status != 200:
            assert isinstance(body, dict), (case.kind, status, body)
            assert isinstance(body.get("error"), str), (case.kind, status, body)
        else:  # only an empty, validly signed batch can get through
            assert body == {"stored": [], "duplicates": [], "checks": 0}, (case.kind, body)
        assert self.snapshot() == self.baseline, case.kind
        return status, body

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    # -- strategies -------------------------------------------------------------------

    def signed(self, body: dict[str, Any]) -> bytes:
        """A hand-built body, validly signed by the enrolled key: what encode_batch refuses."""
        packed = msgpack.packb(body, use_bin_type=True)
        return bytes(
            msgpack.packb(
                {"b": packed, "g": self.key.sign(SIGNATURE_DOMAIN + packed)}, use_bin_type=True
            )
        )

    @cached_property
    def cases(self) -> st.SearchStrategy[Case]:
        valid, now = self.valid, int(time.time() * 1000)
        objs = [measurement_to_obj(m) for m in recent(2)]

        def body(**fields: Any) -> dict[str, Any]:
            return {"v": 1, "a": self.agent_id, "s": 4, "t": now, **fields}

        junk = JUNK
        bad_time = st.integers(0, now - 31 * DAY_MS) | st.integers(now + DAY_MS, 2**63 - 1)
        return st.one_of(
            st.builds(Case, st.just("random"), st.binary(max_size=2048)),
            st.integers(0, len(valid) - 1).map(lambda n: Case("truncated", valid[:n])),
            st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
                lambda f: Case(
                    "flipped", valid[: f[0]] + bytes([valid[f[0]] ^ f[1]]) + valid[f[0] + 1 :]
                )
            ),
            st.tuples(st.integers(1, 32 * 1024), st.booleans()).map(
                lambda o: Case("oversize", valid + b"\0" * (FUZZ_MAX_BODY + o[0]), chunked=o[1])
            ),
            st.binary(min_size=32, max_size=32).map(
                lambda seed: Case(
                    "wrong_key",
                    encode_batch(
                        self.agent_id, 2, recent(2), Ed25519PrivateKey.from_private_bytes(seed)
                    ),
                )
            ),
            st.builds(
                Case,
                st.just("content_type"),
                st.just(valid),
                st.sampled_from([None, "application/json", "text/plain"]),
            ),
            bad_time.map(
                lambda t: Case(
                    "timestamp", encode_batch(self.agent_id, 3, [], self.key, created_ms=t)
                )
            ),
            # "t" is a record's started_ms in the wire map (agent.wire).
            bad_time.map(lambda t: Case("started_ms", self.signed(body(m=[{**objs[0], "t": t}])))),
            st.just(
                Case(
                    "duplicate_id",
                    self.signed(body(m=[objs[0], objs[0]])),
                )
            ),
            st.fixed_dictionaries(
                {"v": st.integers(0, 2) | junk, "a": st.just(self.agent_id), "s": junk},
                optional={"t": junk, "m": st.lists(junk, max_size=3), "e": junk, "c": junk},
            ).map(lambda body: Case("schema", self.signed(body))),
            # Connectivity checks: each bad in its own way, next to a valid measurement.
            st.one_of(
                st.lists(junk, min_size=1, max_size=3),
                bad_time.map(lambda t: [[t, False]]),
                st.just([[now - 1000, True], [now - 1000, False]]),
                st.just([[now - 1000 - i, True] for i in range(MAX_CHECKS + 1)]),
            ).map(lambda c: Case("checks", self.signed(body(m=objs[:1], c=c)))),
        )


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz") / "collector.db")
    try:
        yield h
    finally:
        h.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_batches_get_a_4xx_and_change_nothing(harness: Harness, data: st.DataObject) -> None:
    harness.check(data.draw(harness.cases))
