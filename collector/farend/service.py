"""Collector far end: what the collector's API knows of it, to hand agents their tickets.

The API (``collector.web.farend``) keeps one :class:`FarendService` on the app: the far end's
settings, its ports (as bound, when it runs here on any free port) and the token signer,
and the server itself when it runs in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.wire.testlist import in_categories
from collector.farend.config import MAX_TARGETS, FarendConfig
from collector.farend.server import Farend, Ports
from collector.farend.tokens import TokenSigner
from collector.testlist import TestList

__all__ = ["FarendService"]


@dataclass
class FarendService:
    config: FarendConfig
    signer: TokenSigner
    ports: Ports
    server: Farend | None = None
    # The served test list's throttle targets, by the digest of the list they came from.
    _listed: tuple[str, tuple[str, ...]] = field(default=("", ()), repr=False)

    def targets(self, testlist: TestList | None) -> list[str]:
        """The operator's targets, then the served list's rows in the throttle categories."""
        if testlist is not None and testlist.digest != self._listed[0]:
            text = testlist.csv.decode("utf-8-sig", errors="replace")
            urls = tuple(t.url for t in in_categories(text, self.config.categories))
            self._listed = (testlist.digest, urls)
        listed = self._listed[1] if testlist is not None else ()
        return list(dict.fromkeys((*self.config.targets, *listed)))[:MAX_TARGETS]

    def ticket(
        self, agent_id: str, host_seen: str | None, testlist: TestList | None = None
    ) -> dict[str, object]:
        """The JSON answer of ``POST /api/v1/farend`` for ``agent_id``, who reached the API
        by the name ``host_seen``; ``testlist`` is the one this collector serves."""
        token, expires = self.signer.issue(agent_id)
        host = self.config.advertise or host_seen or self.config.host
        return {
            "host": host,
            "tls_port": self.ports.tls,
            "http_port": self.ports.http,
            "udp_port": self.ports.udp,
            "token": token,
            "expires": expires,
            "targets": self.targets(testlist),
        }
