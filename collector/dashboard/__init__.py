"""Collector dashboard: the HTML pages at ``/``, their charts and the operator's login."""
