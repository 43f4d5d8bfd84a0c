"""Collector web layer: the aiohttp app factory (``app``), its typed keys (``keys``), the
route tables (``handlers``, ``queries``), query parameters (``params``), the JSON error
middleware (``errors``) and the Prometheus metrics (``metrics``).
"""
