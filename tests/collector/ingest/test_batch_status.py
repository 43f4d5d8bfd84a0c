"""The agent's status in signed batches: the spool depth (``q``) and the version (``r``), exact
round trips, batches without them (older agents') still valid, and refusal of mistyped or
unbounded values on both sides."""

from __future__ import annotations

from typing import Any

import pytest

from agent import __version__
from agent.wire.batch import (
    MAX_VERSION,
    REPORTED_VERSION,
    BatchError,
    encode_batch,
    reported_version,
)
from tests.agent.wire.batches import AGENT, KEY, NOW, RECORDS, body, reason, signed, verify


def test_round_trip_with_and_without_the_status() -> None:
    data = encode_batch(
        AGENT, 1, RECORDS[:2], KEY, created_ms=NOW, evictions=4, spool=(120, 7), version="1.2.3"
    )
    batch = verify(data)
    assert (batch.spool, batch.version, batch.evictions) == ((120, 7), "1.2.3", 4)
    heartbeat = verify(
        encode_batch(AGENT, 2, [], KEY, created_ms=NOW, checks=[(NOW, True)], spool=(0, 0))
    )
    assert (heartbeat.spool, heartbeat.version) == ((0, 0), None)
    # An older agent's batch, without either key: valid, and says nothing.
    old = verify(signed(body(RECORDS[:1])))
    assert (old.spool, old.version, old.evictions) == (None, None, 0)


def test_this_agents_version_is_reported_as_is() -> None:
    assert __version__ == REPORTED_VERSION
    long_local = "0.2.1.dev12+g1a2b3c4d.d20261201"
    assert reported_version(long_local) == long_local
    # A version the collector would refuse is left out, never a reason to refuse a batch.
    assert reported_version("1.0 <b>beta</b>") is None
    assert reported_version("") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"q": 5},
        {"q": [1]},
        {"q": [1, 2, 3]},
        {"q": [-1, 0]},
        {"q": [True, 0]},
        {"q": ["1", 0]},
        {"q": None},
        {"r": 1},
        {"r": ""},
        {"r": "x" * (MAX_VERSION + 1)},
        {"r": "1.0 beta"},
        {"r": "<script>"},
        {"r": "1.0\n"},
        {"r": "ünï"},
        {"r": None},
    ],
)
def test_bad_status_fields_are_refused(fields: dict[str, Any]) -> None:
    assert reason(signed(body(RECORDS[:1], **fields))) == "schema"


def test_the_encoder_refuses_what_the_collector_would() -> None:
    with pytest.raises(BatchError, match=r"batch\.q"):
        encode_batch(AGENT, 1, [], KEY, spool=(1,))  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="unsigned"):
        encode_batch(AGENT, 1, [], KEY, spool=(-1, 0))
    with pytest.raises(BatchError, match=r"batch\.r"):
        encode_batch(AGENT, 1, [], KEY, version="1.0 beta")
    longest = "9" * MAX_VERSION
    assert verify(encode_batch(AGENT, 1, [], KEY, created_ms=NOW, version=longest)).version == (
        longest
    )
