"""The bandwidth budget counts each redirect hop as the site test it is."""

from __future__ import annotations

import dataclasses

from agent.daemon.budget import CONTROL_REQUEST, HTTP_OVERHEAD, measurement_bytes
from tests.agent.wire.examples import REDIRECTED


def test_each_hop_costs_its_own_probes_and_control_request() -> None:
    alone = dataclasses.replace(REDIRECTED, hops=())
    one_hop = measurement_bytes(REDIRECTED, [100, 200])
    assert measurement_bytes(alone, [100]) < measurement_bytes(REDIRECTED, [100])
    hop_alone = dataclasses.replace(
        REDIRECTED, agent=REDIRECTED.hops[0].agent, control=REDIRECTED.hops[0].control, hops=()
    )
    assert one_hop == measurement_bytes(alone, [100]) + measurement_bytes(hop_alone, [200])
    assert measurement_bytes(hop_alone, [200]) > HTTP_OVERHEAD + CONTROL_REQUEST + 200
