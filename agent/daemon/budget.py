"""Agent daemon: the daily bandwidth budget (``limits.daily_bandwidth``): what counts against it,
the day's running total, and the uploader that keeps to it.

Volunteers on metered links cap the agent's traffic per UTC day. The agent cannot see its own
packets without privileges, so the count is an estimate built from what it does observe:

- a throttle test: its transfers' payload, connections and handshakes (``throttle_bytes``);
- a site measurement (and each redirect hop it followed, the same way): every DNS exchange
  the probes made (query and each reply, at a fixed size per message), every TCP connection
  attempt (handshake and teardown packets), every TLS handshake (client hello, and for a
  completed one the server's flight, sized by the number of certificates it sent), every
  HTTP round trip (request and response headers at a fixed size, plus the body bytes
  actually read), and the control request to the collector with its encoded answer;
- an upload: the exact bytes of every signed batch body POSTed, heartbeat-only ones
  included, plus a fixed allowance for the HTTP headers and the collector's answer;
- a test-list fetch: the answer's body bytes plus headers.

Not counted: connectivity checks (a few hundred bytes every few minutes, and they must go on
when the budget is spent, since they are what detects a shutdown), IP and TCP overhead beyond
the allowances, retransmissions, and TLS records after the handshake. The estimate is meant
to err a little low on a lossy link, never to be an order of magnitude off.

Once the day's total reaches the budget, ``agent.daemon.upload_budgeted.BudgetedUploader`` sends
heartbeat-only batches (the spooled checks, no records): an agent over budget must not look to
the collector like one silenced by a shutdown. Their bytes still count.

The day's usage lives in the spool's meta table under ``bandwidth_YYYY-MM-DD`` (UTC), so a
restart keeps it; older days' keys are deleted when :class:`DailyBudget` starts.

Standard library only at import: the daemon's lean idle mode counts its heartbeat batches
here too (docs/design/005-lean-idle.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from agent.daemon.spoolfile import SpoolFull

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent.daemon.spool import Spool
    from agent.model.measurement import SiteMeasurement, Vantage
    from agent.model.observations import ThrottleObservation
    from agent.model.trace import TraceObservation

__all__ = [
    "BUDGET_SPENT",
    "HTTP_OVERHEAD",
    "META_PREFIX",
    "PAUSED",
    "DailyBudget",
    "day_key",
    "measurement_bytes",
    "trace_bytes",
    "upload_bytes",
]

log = logging.getLogger("netsonde.agent")

META_PREFIX = "bandwidth_"
# Sizes of what the probes do not keep, in bytes on the wire including IP and TCP/UDP headers.
DNS_MESSAGE = 90  # a query or a small A answer
TCP_ATTEMPT = 4 * 60  # SYN, SYN-ACK, ACK, FIN/RST, about 60 bytes each
TLS_CLIENT_HELLO = 600
TLS_SERVER_BASE = 1200  # server hello, key share, finished, without certificates
TLS_CERTIFICATE = 1300  # a typical DER certificate
HTTP_OVERHEAD = 700  # request line and headers, response status line and headers
CONTROL_REQUEST = 300  # the POST /api/v1/control body: target and addresses
BUDGET_SPENT = "daily bandwidth budget spent"
PAUSED = f"paused: {BUDGET_SPENT}"


def day_key(now: float | None = None) -> str:
    """The meta key of the current UTC day's usage."""
    stamp = time.gmtime(time.time() if now is None else now)
    return f"{META_PREFIX}{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}"


def _vantage_bytes(vantage: Vantage) -> int:
    total = 0
    dns = vantage.dns
    # The system resolver's answer is one exchange whatever its retries; public resolvers
    # may carry injected replies too, each counted.
    for system in (dns.system, dns.system6):
        total += 2 * DNS_MESSAGE if system is not None and system.nameservers else 0
    for exchange in (*dns.public, *dns.public6):
        total += DNS_MESSAGE * (1 + len(exchange.replies))
    for endpoint in vantage.endpoints:
        total += TCP_ATTEMPT
        for handshake in (endpoint.tls, endpoint.tls_benign):
            if handshake is None:
                continue
            total += TLS_CLIENT_HELLO
            if handshake.failure is None:
                total += TLS_SERVER_BASE + TLS_CERTIFICATE * handshake.chain_length
        if endpoint.tls_benign is not None:
            total += TCP_ATTEMPT  # the SNI swap opens a connection of its own
        for trip in (endpoint.http, endpoint.http_benign):
            if trip is not None:
                total += HTTP_OVERHEAD + trip.body_length
        if endpoint.http_benign is not None:
            total += TCP_ATTEMPT
    return total


def throttle_bytes(obs: ThrottleObservation) -> int:
    """A throttle test's transfers: each a connection, a handshake for SNI, a request, and the
    payload the far end counted (what the agent pushed past it never left the socket)."""
    total = 0
    for transfer in obs.transfers:
        total += TCP_ATTEMPT + HTTP_OVERHEAD + transfer.bytes
        if transfer.handshake_ms is not None:
            total += TLS_CLIENT_HELLO + TLS_SERVER_BASE + TLS_CERTIFICATE
    return total


def trace_bytes(obs: TraceObservation) -> int:
    """A trace's attempts: each a connection (for a SYN, the SYN and what came back), the
    trigger or its swap, the ICMP error or the answer (at most the bytes read, a ClientHello's
    or a request's worth counted for each), and its references' handshakes."""
    total = TCP_ATTEMPT * len(obs.references)
    for attempt in obs.attempts:
        total += TCP_ATTEMPT
        if obs.trigger != "ip":
            answer = TLS_SERVER_BASE + TLS_CERTIFICATE if attempt.reaction == "data" else 0
            total += TLS_CLIENT_HELLO + answer
    return total


def measurement_bytes(m: SiteMeasurement, control_answers: Sequence[int] = ()) -> int:
    """Estimated bytes the agent sent and received to make ``m``; ``control_answers`` are the
    sizes of the collector's encoded control views, the first URL's and then each hop's,
    where one came back (missing ones count 0)."""
    total = 0
    # Each redirect followed is a site test of its own, with its own control request.
    steps = (
        (m.agent, m.control, m.control_failure),
        *((h.agent, h.control, h.control_failure) for h in m.hops),
    )
    for index, (agent, control, control_failure) in enumerate(steps):
        total += _vantage_bytes(agent)
        if control is not None or control_failure is not None:
            answer = control_answers[index] if index < len(control_answers) else 0
            total += HTTP_OVERHEAD + CONTROL_REQUEST + answer
    if m.throttle is not None:
        total += throttle_bytes(m.throttle)
    if m.trace is not None:
        total += trace_bytes(m.trace)
    return total


def upload_bytes(body: int, measurements: int) -> int:
    """One batch POST: its body, headers, and the answer listing each acknowledged id."""
    return body + HTTP_OVERHEAD + 45 * measurements


class DailyBudget:
    """Today's estimated traffic against ``limits.daily_bandwidth``. Kept in memory for the
    checks and in the spool's meta table (:func:`day_key`) across restarts."""

    def __init__(self, limit: int | None, spool: Spool) -> None:
        self.limit, self.spool = limit, spool
        self.day = day_key()
        value = spool.get_meta(self.day)
        self.used = value if isinstance(value, int) else 0
        self.logged_day: str | None = None  # exhaustion is logged once a day
        # Older days are of no use to anyone; dropping them keeps the meta table small.
        for key in spool.meta_keys(META_PREFIX):
            if key != self.day:
                try:
                    spool.delete_meta(key)
                except SpoolFull:
                    break  # a start on a full disk must go on: the next start drops them

    def roll(self) -> str:
        """The current day's key, starting the day afresh at UTC midnight."""
        day = day_key()
        if day != self.day:
            self.day, self.used = day, 0
        return day

    def spent(self, pending: int = 0) -> bool:
        """Whether today's budget is used up, counting ``pending`` bytes not yet added (a
        method, not a property: the answer changes at midnight)."""
        self.roll()
        return self.limit is not None and self.used + pending >= self.limit

    def log_exhausted(self, what: str) -> None:
        if self.logged_day != self.day:
            self.logged_day = self.day
            log.warning(
                "%s: %d of %d bytes used today; %s until 00:00 UTC",
                BUDGET_SPENT, self.used, self.limit or 0, what,
            )  # fmt: skip

    def add_measurement(self, m: SiteMeasurement) -> tuple[str, int]:
        """Counts ``m``'s traffic in memory; returns the (day key, bytes) the spool must add
        in the transaction that stores ``m``."""
        from agent.wire.record import encode_vantage  # only the full daemon measures

        controls = (m.control, *(hop.control for hop in m.hops))
        cost = measurement_bytes(m, [len(encode_vantage(c)) if c else 0 for c in controls])
        day = self.roll()
        self.used += cost
        return day, cost

    async def spend(self, nbytes: int) -> None:
        """Counts traffic not tied to a spooled record (uploads, test list fetches)."""
        day = self.roll()
        self.used += nbytes
        await asyncio.to_thread(self.spool.bump_meta, day, nbytes)
