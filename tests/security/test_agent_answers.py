"""Agent security: what the agent reads from a collector is capped and decoded without an
exception, whoever answers in the collector's name.

A real HTTP server on loopback (``tests.security.agent_hostile``) answers the agent's real
clients, the uploader, the test-list and enrolment clients and lean mode's http.client
requests, with 512 MiB bodies (the agent must stop reading at its cap, its memory must not
grow with the body) and with JSON nested deeper than the parser recurses.
"""

from __future__ import annotations

import asyncio
import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.api.enroll import EnrollError, request_enrollment
from agent.api.paths import HEALTH_PATH
from agent.api.testlist import MAX_TESTLIST_BYTES, fetch_testlist
from agent.daemon.budget import DailyBudget
from agent.daemon.config import parse_config
from agent.daemon.lean import _Collector, _Lean
from agent.daemon.spool import Spool
from agent.daemon.state import META_UPLOAD_FAILURE
from agent.daemon.upload import BAD_RESPONSE, Uploader
from agent.wire.record import encode_measurement
from tests.agent.wire.batches import clones
from tests.security.agent_hostile import HUGE, Answer, hostile_collector, nested_json, rss_bytes

KEY = Ed25519PrivateKey.generate()
# What a stopped reader still lets through: its last chunk and the socket buffers of both
# sides of a loopback connection. Reading on would be 512 MiB.
SENT_AT_MOST = 32 * 2**20
GREW_AT_MOST = 64 * 2**20

ENDLESS = [Answer(stream=HUGE), Answer(stream=HUGE, declare_length=True)]
UNDECODABLE = [
    Answer(body=nested_json()),
    Answer(body=b'{"stored": ' + nested_json() + b', "duplicates": []}'),
    Answer(body=b'{"stored": "ab", "duplicates": 7, "checks": []}'),
    Answer(body=b"\xff\xfe\x00\xd8 not UTF-8"),
    Answer(status=400, body=b'{"reason": ' + nested_json() + b"}"),
    Answer(status=400, body=b'{"reason": ["schema"]}'),  # unhashable: not a known reason
]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(tmp_path / "spool.db", max_bytes=10**8) as opened:
        m = clones(1)[0]
        opened.add(encode_measurement(m), m.id, m.started_ms)
        opened.add_check(int(time.time() * 1000), True)
        yield opened


async def _upload(url: str, spool: Spool) -> str | None:
    async with Uploader([url], "agent-1", KEY, next_seq=lambda: 1, timeout=30) as uploader:
        return (await uploader.upload_once(spool)).failure


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", ENDLESS, ids=["until-closed", "content-length"])
async def test_upload_stops_reading_an_endless_answer(spool: Spool, answer: Answer) -> None:
    with hostile_collector() as hostile:
        hostile.answer = answer
        before = rss_bytes()
        failure = await _upload(hostile.url, spool)
        grew = rss_bytes() - before
    assert failure == BAD_RESPONSE
    assert hostile.requests == 1
    assert hostile.sent < SENT_AT_MOST, hostile.sent
    assert grew < GREW_AT_MOST, grew
    assert spool.depth()[0] == 1  # nothing taken for acknowledged


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", UNDECODABLE)
async def test_upload_turns_an_undecodable_answer_into_a_failure(
    spool: Spool, answer: Answer
) -> None:
    with hostile_collector() as hostile:
        hostile.answer = answer
        failure = await _upload(hostile.url, spool)
    assert failure == (BAD_RESPONSE if answer.status == 200 else "upload_http_400")
    assert spool.depth()[0] == 1
    assert len(spool.peek_checks(10)) == 1


async def _testlist(url: str) -> object:
    async def spend(nbytes: int) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        return await fetch_testlist(session, [url], None, proxy=None, spend=spend)


@pytest.mark.asyncio
async def test_the_test_list_is_capped_and_decoded_safely() -> None:
    with hostile_collector() as hostile:
        hostile.answer = Answer(stream=HUGE)
        before = rss_bytes()
        endless = await _testlist(hostile.url)
        grew = rss_bytes() - before
        sent = hostile.sent
        hostile.answer = Answer(body=b'{"urls": ' + nested_json() + b"}")
        nested = await _testlist(hostile.url)
        hostile.answer = Answer(body=b'{"urls": [1, {"a": []}]}')
        typed = await _testlist(hostile.url)
    assert endless == f"{hostile.url}: answer over {MAX_TESTLIST_BYTES} bytes"
    assert sent < MAX_TESTLIST_BYTES + SENT_AT_MOST, sent
    assert grew < GREW_AT_MOST, grew
    assert nested == typed == f"{hostile.url}: not a test list answer"


@pytest.mark.asyncio
async def test_enrolment_answers_are_capped_and_decoded_safely() -> None:
    with hostile_collector() as hostile:
        hostile.answer = Answer(status=201, stream=HUGE)
        with pytest.raises(EnrollError, match="answered over 1048576 bytes"):
            await request_enrollment(hostile.url, "token", bytes(32), timeout=30)
        assert hostile.sent < SENT_AT_MOST
        hostile.answer = Answer(status=201, body=b'{"agent_id": ' + nested_json() + b"}")
        with pytest.raises(EnrollError, match="without an agent_id"):
            await request_enrollment(hostile.url, "token", bytes(32), timeout=30)
        hostile.answer = Answer(status=403, body=nested_json())
        with pytest.raises(EnrollError, match="refused the enrolment: HTTP 403"):
            await request_enrollment(hostile.url, "token", bytes(32), timeout=30)


def test_lean_mode_stops_reading_an_endless_answer() -> None:
    with hostile_collector() as hostile:
        for answer in ENDLESS:
            hostile.answer = answer
            collector = _Collector((hostile.url,), None, None)
            before = rss_bytes()
            with pytest.raises(http.client.HTTPException, match="answer"):
                collector.request("GET", HEALTH_PATH, None, 30.0, proxied=False)
            assert rss_bytes() - before < GREW_AT_MOST
            assert hostile.sent < SENT_AT_MOST, hostile.sent


@pytest.mark.asyncio
@pytest.mark.parametrize("answer", [*UNDECODABLE[:4], ENDLESS[0]])
async def test_lean_heartbeats_turn_any_answer_into_a_failure(
    tmp_path: Path, spool: Spool, answer: Answer
) -> None:
    with hostile_collector() as hostile:
        hostile.answer = answer
        raw = {"state_dir": str(tmp_path), "collector": {"urls": [hostile.url]}}
        config = parse_config(raw, str(tmp_path / "agent.toml"))
        budget = DailyBudget(None, spool)
        lean = _Lean(config, spool, "agent-1", KEY, asyncio.Event(), budget)
        await lean.heartbeat()
        assert await asyncio.to_thread(lean._reachable) is (answer.stream == 0)
    assert spool.get_meta(META_UPLOAD_FAILURE) == BAD_RESPONSE
    assert len(spool.peek_checks(10)) == 1  # kept for a collector that says it stored it
