"""Collector dashboard: the paths of its pages, in one place.

Pages for people, not the API: the API's paths, which agents and tools use, are in
``agent.api.paths``. Public pages show networks (ASN and country), never an agent; the
operator's pages, under ``/operator/``, need the operator's credential (``/login``).
"""

from __future__ import annotations

__all__ = [
    "FAVICON_PATH",
    "HOME_PATH",
    "LOGIN_PATH",
    "LOGOUT_PATH",
    "MATRIX_PATH",
    "MEASUREMENT_PATH",
    "OPERATOR_AGENTS_PATH",
    "OUTAGES_PATH",
    "STATIC_PREFIX",
    "TIMELINE_PATH",
]

HOME_PATH = "/"  # the overview
MATRIX_PATH = "/matrix"
TIMELINE_PATH = "/timeline"  # ?domain= or ?asn=
OUTAGES_PATH = "/outages"
MEASUREMENT_PATH = "/measurement/{id}"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
OPERATOR_AGENTS_PATH = "/operator/agents"
STATIC_PREFIX = "/static/"
FAVICON_PATH = "/static/favicon.svg"
