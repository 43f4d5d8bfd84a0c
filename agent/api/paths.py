"""Agent API: the collector's contract, its paths, media type, headers and limits.

The one list of the collector's endpoints: the agent's clients (``agent.api``), the daemon's
lean idle mode (http.client, ``agent.daemon.lean``) and the collector's route tables
(``collector.web``) all take them from here, so they cannot drift apart. Standard library
only, so the lean mode and ``--help`` stay light.
"""

from __future__ import annotations

from agent import __version__

__all__ = [
    "AGENTS_PATH",
    "BLOCKING_PATH",
    "CACHE_HEADER",
    "CONTROL_PATH",
    "ENROLL_PATH",
    "FAREND_PATH",
    "HEALTH_PATH",
    "MAX_ADDRESSES",
    "MEASUREMENTS_PATH",
    "METRICS_PATH",
    "MSGPACK",
    "OUTAGES_PATH",
    "TESTLIST_PATH",
    "TIMELINE_PATH",
    "USER_AGENT",
]

API = "/api/v1"
# Used by agents.
HEALTH_PATH = f"{API}/health"
ENROLL_PATH = f"{API}/enroll"
CONTROL_PATH = f"{API}/control"
MEASUREMENTS_PATH = f"{API}/measurements"  # POST: a signed batch; GET: the query API
TESTLIST_PATH = f"{API}/testlist"
FAREND_PATH = f"{API}/farend"  # POST, signed: where the far end is, and a token for it
# Queries, for people and their tools.
BLOCKING_PATH = f"{API}/blocking"
TIMELINE_PATH = f"{API}/timeline"
AGENTS_PATH = f"{API}/agents"
OUTAGES_PATH = f"{API}/outages"
METRICS_PATH = "/metrics"

MSGPACK = "application/msgpack"
USER_AGENT = f"netsonde-agent/{__version__}"
# Whether a control answer came from the collector's cache: "hit", "miss" or "shared".
CACHE_HEADER = "X-Netsonde-Control-Cache"
MAX_ADDRESSES = 16  # addresses one control request may ask about; the collector refuses more
