"""The bandwidth budget counts the AAAA queries as it counts the A ones."""

from __future__ import annotations

from agent.daemon.budget import DNS_MESSAGE, measurement_bytes
from tests.agent.wire.examples import CLEAN, CLEAN_AAAA


def test_aaaa_queries_count_like_a_queries() -> None:
    # The system resolver's AAAA query and answer, and the public resolver's query and reply.
    assert measurement_bytes(CLEAN_AAAA) - measurement_bytes(CLEAN) == 4 * DNS_MESSAGE
