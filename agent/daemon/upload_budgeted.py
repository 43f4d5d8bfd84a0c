"""Agent daemon: the uploader within the day's bandwidth budget (``agent.daemon.budget``).

Apart from ``agent.daemon.upload`` because budget accounting must stay importable without
aiohttp (lean mode, docs/design/005-lean-idle.md), and the uploader's module is long enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.daemon.budget import DailyBudget, upload_bytes
from agent.daemon.upload import Spool, Uploader, UploadResult
from agent.model.measurement import SiteMeasurement

__all__ = ["BudgetedUploader"]


class BudgetedUploader(Uploader):
    """The uploader, counting every batch body it POSTs against ``budget``, and sending only
    heartbeat-only batches once the budget is spent."""

    def __init__(
        self,
        collector_urls: Sequence[str],
        agent_id: str,
        key: Ed25519PrivateKey,
        *,
        budget: DailyBudget,
        **options: Any,
    ) -> None:
        super().__init__(collector_urls, agent_id, key, **options)
        self.budget = budget
        self.counted = 0  # bytes since the daemon last took them (budget.spend)
        self.body_bytes = 0  # batch bodies alone, since the daemon last took them

    async def upload_once(self, spool: Spool) -> UploadResult:
        # Checked before every batch, with what this drain already sent: records spooled
        # while a drain runs would otherwise go out after the budget ran out.
        self.checks_only = self.budget.spent(self.counted)
        return await super().upload_once(spool)

    async def _post(
        self,
        spool: Spool,
        data: bytes,
        batch: list[tuple[str, SiteMeasurement]],
        result: UploadResult,
    ) -> str | None:
        self.counted += upload_bytes(len(data), len(batch))
        self.body_bytes += len(data)
        return await super()._post(spool, data, batch, result)
