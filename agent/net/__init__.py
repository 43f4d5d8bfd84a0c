"""Agent net: primitives that each perform one network operation (DNS, TCP, TLS, HTTP).

Each primitive returns a typed observation from ``agent.model`` whose failure is a
normalized string (None on success); network exceptions become those strings in one place,
``agent.net.errors``, and never escape.
"""
