"""Agent CLI: ``netsonde-agent probe --protocols``, the protocol test instead of the site test.

Each target's protocol test (``agent.protocols``) runs through the collector's far end with
the ticket ``probe --throttle`` uses (``agent.api.farend.Tickets``), fetched once and again when
it is about to expire. Tests run one at a time: each is a few datagrams for about 2 s, and
two at once would share the far end's echo lease for this address.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.api.control import HTTPControl
    from agent.cli.throttle import Measure
    from agent.model.measurement import SiteMeasurement, Target

__all__ = ["open_protocols"]


async def open_protocols(
    args: argparse.Namespace, stack: AsyncExitStack, control: HTTPControl | None
) -> Measure:
    """The measuring function of ``probe --protocols``, signing with the control client's
    identity; its client closes with ``stack``."""
    from agent.cli.throttle import far_end_tickets
    from agent.probes.protocols import ProtocolPlan
    from agent.protocols import ProtocolConfig, measure_protocols

    tickets = await far_end_tickets(args, stack, control)
    config = ProtocolConfig(
        benign_name=args.benign_sni,
        plan=ProtocolPlan(timeout=args.timeout),
        dns_timeout=args.timeout,
    )
    one_at_a_time = asyncio.Lock()

    async def measure(target: Target) -> SiteMeasurement:
        async with one_at_a_time:
            return await measure_protocols(target, await tickets.get(), config)

    return measure
