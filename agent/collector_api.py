"""Agent daemon: the collector's API paths, media type and the agent's User-Agent.

Standard library only, so the aiohttp clients (``agent.control``, ``agent.upload``,
``agent.collector_http``) and the lean idle mode's http.client requests (``agent.lean``)
speak to exactly the same endpoints. The collector imports these names too.
"""

from __future__ import annotations

from agent import __version__

__all__ = [
    "CONTROL_PATH",
    "HEALTH_PATH",
    "MEASUREMENTS_PATH",
    "MSGPACK",
    "USER_AGENT",
]

CONTROL_PATH = "/api/v1/control"
HEALTH_PATH = "/api/v1/health"
MEASUREMENTS_PATH = "/api/v1/measurements"
MSGPACK = "application/msgpack"
USER_AGENT = f"netsonde-agent/{__version__}"
