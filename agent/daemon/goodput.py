"""Agent daemon: the benign goodput sample some connectivity checks take, for degradation.

Every ``schedule.goodput_every`` checks (by the clock: a check interval times that, since
the last sample, kept in the spool's meta so both modes and restarts keep the rhythm), a
check that found the agent online also downloads at most ``limits.goodput_bytes`` from the
collector's far end over TLS naming the benign name, for at most :data:`WINDOW` seconds,
and stores the goodput beside the check; it rides to the collector with it
(``agent.wire.batch``), where ``collector.degradation`` compares it with the agent's own
baseline. The sample never delays what the check found: it is taken after the check has
decided, only when online, within :data:`DEADLINE` seconds in all, and it counts against the
daily budget (``agent.daemon.budget``), which once spent stops it.

Standard library only at import: lean idle mode asks :func:`lean_goodput_due_ms` when to
hand over to full mode, which takes the sample. Only for samples spaced further apart than
full mode waits before it goes lean (``agent.daemon.state.lean_threshold``): closer ones
would have the daemon exec back and forth, so they are taken while full mode runs anyway.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.api.control import HTTPControl
    from agent.daemon.budget import DailyBudget
    from agent.daemon.config import AgentConfig
    from agent.daemon.spool import Spool
    from agent.model.farend import FarendTicket

__all__ = [
    "DEADLINE",
    "META_GOODPUT_AT",
    "WINDOW",
    "Goodput",
    "goodput_due_ms",
    "lean_goodput_due_ms",
]

log = logging.getLogger("netsonde.agent")

META_GOODPUT_AT = "goodput_sampled_ms"
WINDOW = 2.0  # seconds of download timed, at most
DEADLINE = 15.0  # the ticket, the far end's name, the connection and the download, in all
# For the budget: TCP and TLS handshakes and the request, on top of the payload; the ticket
# request alone when no download came of it.
OVERHEAD_BYTES = 8 * 1024
TICKET_BYTES = 2 * 1024


def goodput_due_ms(spool: Spool, config: AgentConfig) -> int | None:
    """When the next sample is due (Unix ms), 0 if none was ever taken, None if never."""
    every = config.schedule.goodput_every
    if every <= 0:
        return None
    last = spool.get_meta(META_GOODPUT_AT)
    if not isinstance(last, int):
        return 0
    # Half a check early: a check whose jitter brings it in just before the due time counts.
    return last + int((every - 0.5) * config.schedule.connectivity_check * 1000)


def lean_goodput_due_ms(spool: Spool, config: AgentConfig) -> int | None:
    """When lean mode must hand over for a sample; None if never (see the module's doc)."""
    from agent.daemon.state import lean_threshold

    schedule = config.schedule
    if schedule.goodput_every * schedule.connectivity_check < lean_threshold(schedule):
        return None
    return goodput_due_ms(spool, config)


class Goodput:
    """Takes the samples for full mode's connectivity job."""

    def __init__(
        self,
        config: AgentConfig,
        control: HTTPControl,
        budget: DailyBudget,
        spool: Spool,
        resolv_conf: str = "/etc/resolv.conf",
    ) -> None:
        self.config, self.control, self.budget, self.spool = config, control, budget, spool
        self.resolv_conf = resolv_conf

    async def sample(self, now_ms: int) -> int | None:
        """Bits per second, when a sample is due and could be taken; None otherwise."""
        due = await asyncio.to_thread(goodput_due_ms, self.spool, self.config)
        # Only a sample the day's budget has room for: measuring comes first.
        room = self.config.limits.goodput_bytes + OVERHEAD_BYTES
        if due is None or due > now_ms or self.budget.spent(pending=room):
            return None
        await asyncio.to_thread(self.spool.set_meta, META_GOODPUT_AT, now_ms)
        started = time.monotonic()
        moved, bps = 0, None
        try:
            async with asyncio.timeout(DEADLINE):
                moved, bps = await self._measure()
        except TimeoutError:
            log.info("goodput: no sample within %.0f s", DEADLINE)
        finally:
            await self.budget.spend(moved + OVERHEAD_BYTES if moved else TICKET_BYTES)
        if bps is not None:
            log.info("goodput: %.0f kbit/s (%.1f s)", bps / 1000, time.monotonic() - started)
        return bps

    async def _measure(self) -> tuple[int, int | None]:
        from agent.model.farend import FarendTicket
        from agent.probes.goodput import sample
        from agent.verdict.throttle import goodput_bps

        ticket = await self._ticket()
        if not isinstance(ticket, FarendTicket):
            log.info("goodput: no far end (%s)", ticket)
            return 0, None
        ip = await self._address(ticket.host)
        if ip is None:
            return 0, None
        probe = self.config.probe
        seen = await sample(
            ip, ticket.tls_port, ticket.token, probe.benign_sni,
            self.config.limits.goodput_bytes, window=WINDOW, timeout=probe.timeout,
        )  # fmt: skip
        if seen is None:
            return 0, None
        rate = goodput_bps(seen)
        return seen.bytes, None if rate is None else round(rate)

    async def _ticket(self) -> FarendTicket | str:
        from agent.api.farend import FarendClient

        ca_file = None if self.config.ca_file is None else str(self.config.ca_file)
        client = FarendClient(
            self.control.collector_url, timeout=self.config.probe.timeout, ca_file=ca_file,
            credential=self.control.credential,
        )  # fmt: skip
        async with client:
            return await client.ticket()

    async def _address(self, host: str) -> str | None:
        """The far end's address, if the agent may connect to it on the collector's say."""
        from agent.model.addresses import may_reach
        from agent.net.dns import system_resolve

        allowed = functools.partial(may_reach, allowed=self.config.testlist.allow_networks)
        try:
            addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
        except ValueError:
            resolved = await system_resolve(
                host, timeout=self.config.probe.dns_timeout, resolv_conf=self.resolv_conf
            )
            addresses = resolved.addresses
        usable = [a for a in addresses if allowed(a)]
        if not usable:
            log.info("goodput: the far end %s is at no address the agent may reach", host)
        return usable[0] if usable else None
