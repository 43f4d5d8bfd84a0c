"""Agent layer 1, net: primitives that each perform one network operation.

Each primitive returns a typed observation whose failure is a normalized
string (None on success); network exceptions are mapped here, in one place,
and never escape.
"""
