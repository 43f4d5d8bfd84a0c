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
    "COLLECTOR_KEY_PATH",
    "CONTROL_PATH",
    "ENROLL_PATH",
    "EVIDENCE_PATH",
    "EXPORT_PATH",
    "FAREND_PATH",
    "FINGERPRINTS_PATH",
    "HEALTH_PATH",
    "INCIDENTS_PATH",
    "MAX_ADDRESSES",
    "MAX_FINGERPRINTS_BYTES",
    "MEASUREMENTS_PATH",
    "METRICS_PATH",
    "MSGPACK",
    "OUTAGES_PATH",
    "REPORT_PATH",
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
FINGERPRINTS_PATH = f"{API}/fingerprints"  # the blockpage fingerprints, OONI CSV
FAREND_PATH = f"{API}/farend"  # POST, signed: where the far end is, and a token for it
# Queries, for people and their tools.
BLOCKING_PATH = f"{API}/blocking"
TIMELINE_PATH = f"{API}/timeline"
AGENTS_PATH = f"{API}/agents"
OUTAGES_PATH = f"{API}/outages"
INCIDENTS_PATH = f"{API}/incidents"
# Evidence: the collector's public signing key, and a signed bundle for a query.
COLLECTOR_KEY_PATH = f"{API}/collector-key"
EVIDENCE_PATH = f"{API}/evidence"
# Measurements as JSON lines, netsonde's or OONI's format, streamed (collector.export).
EXPORT_PATH = f"{API}/export"
METRICS_PATH = "/metrics"
# A report for people (HTML, to print to PDF); `netsonde-collector report` writes the same.
REPORT_PATH = "/report"

MSGPACK = "application/msgpack"
USER_AGENT = f"netsonde-agent/{__version__}"
# Whether a control answer came from the collector's cache: "hit", "miss" or "shared".
CACHE_HEADER = "X-Netsonde-Control-Cache"
MAX_ADDRESSES = 16  # addresses one control request may ask about; the collector refuses more
# The fingerprints a collector may serve and an agent reads: OONI's whole set is ~170 kB as
# served (agent.fingerprints.dump); the collector refuses to start with more, the agent
# abandons a larger answer unread.
MAX_FINGERPRINTS_BYTES = 2 << 20
