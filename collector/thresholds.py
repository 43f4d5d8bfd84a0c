"""Collector: the thresholds that make an incident, as settings. Standard library only.

``collector.config`` holds them (``serve --incident-*``), so this stays as light as it is;
``collector.incidents`` applies them. What each means, and why the defaults are these:
docs/design/008-incidents.md.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HOUR_MS", "MAX_WINDOW_HOURS", "Thresholds"]

HOUR_MS = 3_600_000  # as collector.storage.schema, which this must not import
MAX_WINDOW_HOURS = 168


@dataclass(frozen=True)
class Thresholds:
    """When a domain's blocking verdicts on a network make an incident (all must hold in
    one window), and when agents' offline checks make an outage incident. ValueError, naming
    the setting, for one that cannot work."""

    window_hours: int = 6  # windows start at multiples of this since 1970 (UTC)
    min_blocking: int = 3  # blocking measurements in the window
    min_share: float = 0.5  # of the domain's measurements on that network, offline ones aside
    min_agents: int = 1  # distinct agents that saw a blocking verdict in the window
    outage_min_agents: int = 1  # agents of one network offline together
    outage_min_checks: int = 2  # offline connectivity checks in the outage

    def __post_init__(self) -> None:
        if not 1 <= self.window_hours <= MAX_WINDOW_HOURS:
            raise ValueError(f"window: {self.window_hours} hours, not 1 to {MAX_WINDOW_HOURS}")
        # NaN fails the comparison too.
        if not 0.0 < self.min_share <= 1.0:
            raise ValueError(f"share: {self.min_share!r}, not more than 0 and at most 1")
        for name in ("min_blocking", "min_agents", "outage_min_agents", "outage_min_checks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')}: {getattr(self, name)}, not 1 or more")

    @property
    def window_ms(self) -> int:
        return self.window_hours * HOUR_MS
