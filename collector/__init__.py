"""netsonde collector: the aiohttp service that is the control vantage point and the store.

It imports the probes, the wire schema and the verdict logic from ``agent``;
imports never go the other way.
"""

__version__ = "0.1.0"
