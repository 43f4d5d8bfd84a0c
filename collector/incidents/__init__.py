"""Collector incidents: blocking incidents, outages and (later) degraded periods, detected
from what is stored.

``detect(storage, since_ms, until_ms, thresholds)`` answers a list of :class:`Incident`;
the model is in ``model``, the threshold logic in ``runs`` (pure), the storage reads in
``read``. The thresholds are ``collector.thresholds.Thresholds`` (settings of ``serve``).
docs/design/008-incidents.md.
"""

from collector.incidents.detect import detect, period
from collector.incidents.model import (
    BLOCKING,
    DEGRADED,
    KINDS,
    OUTAGE,
    Incident,
    IncidentNetwork,
)
from collector.thresholds import Thresholds

__all__ = [
    "BLOCKING",
    "DEGRADED",
    "KINDS",
    "OUTAGE",
    "Incident",
    "IncidentNetwork",
    "Thresholds",
    "detect",
    "period",
]
