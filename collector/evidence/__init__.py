"""Collector evidence: what a third party can check without trusting the collector.

``query`` names a set of measurements (a domain, networks, a period), ``key`` is the
collector's own signing key, ``bundle`` builds a signed archive of every measurement behind
a query exactly as its agents signed them, and ``netsonde_verify`` is the single-file
verifier that checks one (and defines the format ``bundle`` writes); ``cli`` has the
``bundle`` and ``verify`` commands. docs/design/007-evidence.md has the format.
"""
