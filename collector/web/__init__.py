"""Collector web layer: the aiohttp app factory (``app``), its typed keys (``keys``), the
route tables (``handlers``, ``queries``, ``operator``), query parameters (``params``), the
JSON error middleware (``errors``), server timeouts (``timeouts``) and the Prometheus metrics
(``metrics``).
"""
