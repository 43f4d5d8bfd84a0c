"""netsonde agent: the measurement engine and the daemon.

Layers, each importing only the ones below it:
``agent.net`` (one network operation each) -> ``agent.probes`` (one test kind
each) -> ``agent.site`` / ``agent.verdict`` (a site test and its pure verdict).
"""

__version__ = "0.1.0"
