"""Agent probes: one module per test kind (dns, endpoint with its tls and http parts,
connectivity).

A probe composes ``agent.net`` primitives into a test and returns observations from
``agent.model``; it never raises because of the network. A new test kind is a new module here.
"""
