"""Agent CLI: ``netsonde-agent probe --throttle``, the throttle test instead of the site test.

Each target's throttle test (``agent.throttle``) runs through the collector's far end, with a
ticket fetched once and again when it is about to expire; the results print, save and
upload as site tests' do. Tests run one at a time whatever ``--concurrency`` says: two at
once would share the link, and each would measure the other's traffic.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api.control import HTTPControl
    from agent.api.farend import Tickets
    from agent.model.measurement import SiteMeasurement, Target

__all__ = ["far_end_tickets", "open_throttle"]

Measure = Callable[["Target"], Coroutine[Any, Any, "SiteMeasurement"]]


async def far_end_tickets(
    args: argparse.Namespace, stack: AsyncExitStack, control: HTTPControl | None
) -> Tickets:
    """The far end's tickets for ``probe --throttle`` or ``--protocols``, asked with the control
    client's identity (it said already if there is none); its client closes with ``stack``."""
    from agent.api.farend import FarendClient, Tickets

    client = FarendClient(
        args.collector,
        timeout=max(10.0, 2 * args.timeout),
        ca_file=args.ca_file,
        credential=control.credential if control is not None else None,
    )
    return Tickets(await stack.enter_async_context(client))


async def open_throttle(
    args: argparse.Namespace, stack: AsyncExitStack, control: HTTPControl | None
) -> Measure:
    """The measuring function of ``probe --throttle``, signing with the identity the control
    client has (it said already if there is none); its client closes with ``stack``."""
    from agent.probes.throttle import ThrottlePlan
    from agent.throttle import ThrottleConfig, measure_throttle

    tickets = await far_end_tickets(args, stack, control)
    config = ThrottleConfig(
        benign_name=args.benign_sni,
        plan=ThrottlePlan(timeout=args.timeout),
        dns_timeout=args.timeout,
    )
    one_at_a_time = asyncio.Lock()

    async def measure(target: Target) -> SiteMeasurement:
        async with one_at_a_time:
            return await measure_throttle(target, await tickets.get(), config)

    return measure
