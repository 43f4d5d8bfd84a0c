"""Agent layer 2, probes: one module per test kind (dns, tcp, tls, http, trace, throttle).

A probe composes ``agent.net`` primitives into a test and returns observations.
"""
