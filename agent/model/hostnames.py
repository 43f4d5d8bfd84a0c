"""Agent model: host names as they go into DNS, the SNI and the Host header.

One rule for every place a name is accepted: a target's host, ``--benign-sni``, the
configuration's ``benign_sni``, the collector's ``--listen`` host. Labels of letters, digits,
hyphens and underscores (real names carry ``_``, and DNS, TLS and HTTP all pass it), 1 to 63
characters, not starting or ending with a hyphen; at most 253 characters in all. Names are
compared in lower case, without a trailing dot, and internationalised names in their ASCII
(IDNA) form.
"""

from __future__ import annotations

import re

__all__ = ["is_host_name", "normalize_host"]

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def normalize_host(raw: str) -> str | None:
    """``raw`` as the ASCII name that goes on the wire, or None if it is not a host name."""
    host = raw.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return host if is_host_name(host) else None


def is_host_name(name: str) -> bool:
    """Whether ``name`` (ASCII, lower case, no trailing dot) is a host name."""
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))
