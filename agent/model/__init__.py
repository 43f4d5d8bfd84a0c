"""Agent model: the data every other layer shares, standard library only.

Observations (``observations``), the failure vocabulary (``failures``), the measurement and
its verdict (``measurement``), verdict names (``verdicts``), host names (``hostnames``),
the one address filter (``addresses``: what may be reached, what is a bogon) and DNS
rcodes (``rcodes``). No third-party imports, as
ooni/probe-cli's ``internal/model``: the verdict, the wire format and the collector use these
without loading dnspython, aiohttp or the probes.
"""
