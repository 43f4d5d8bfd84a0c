"""netsonde agent: the measurement engine, the wire format and the daemon.

Packages, each importing only those below it (docs/architecture.md; checked by lint-imports):
``agent.cli`` -> ``agent.daemon`` -> ``agent.api`` -> ``agent.site`` / ``agent.wire`` ->
``agent.verdict`` -> ``agent.fingerprints`` -> ``agent.probes`` -> ``agent.net`` ->
``agent.model``.
"""

__version__ = "0.1.0"
