"""A check's goodput sample in a batch (``[ms, online, bps]``): the collector reads it beside
the check, and refuses one that is no bits-per-second count, as the agent refuses to send it."""

from __future__ import annotations

from typing import Any

import pytest

from agent.wire.batch import MAX_GOODPUT_BPS, BatchSchemaError, encode_batch
from tests.agent.wire.batches import AGENT, KEY, NOW, body, reason, signed, verify


def test_goodput_is_read_beside_its_check() -> None:
    checks = [[NOW - 2000, True], [NOW - 1000, True, 3_000_000]]
    batch = verify(signed(body([], c=checks)))
    assert batch.checks == [(NOW - 2000, True), (NOW - 1000, True)]
    assert batch.goodput == [(NOW - 1000, 3_000_000)]


@pytest.mark.parametrize("bps", [-1, "1", True, 1.5, MAX_GOODPUT_BPS + 1, [1]])
def test_a_goodput_that_is_no_rate_is_refused(bps: Any) -> None:
    assert reason(signed(body([], c=[[NOW - 1000, True, bps]]))) == "schema"


def test_four_fields_are_refused() -> None:
    assert reason(signed(body([], c=[[NOW - 1000, True, 1, 2]]))) == "schema"


@pytest.mark.parametrize("bps", [-1, MAX_GOODPUT_BPS + 1])
def test_the_agent_refuses_to_send_one(bps: int) -> None:
    with pytest.raises(BatchSchemaError):
        encode_batch(AGENT, 1, [], KEY, checks=[(NOW, True)], goodput={NOW: bps})
