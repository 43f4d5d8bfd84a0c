"""Agent CLI: the ``probe`` command's options, and the checks their values pass.

Standard library only, like ``agent.cli.main``, so ``--help`` stays fast. The ``trace``
command (``agent.cli.trace``) takes some of the same options from here.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from agent.model.hostnames import normalize_host

__all__ = [
    "PROBE_OPTIONS",
    "collector_url",
    "existing_file",
    "host_name",
    "positive_int",
    "seconds",
]


def ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: not readable")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def host_name(text: str) -> str:
    name = normalize_host(text)
    if name is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name")
    return name


def collector_url(text: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a bad port, which is the check
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text.rstrip("/")


# flag, argparse options, help: a table keeps the parser readable at a glance.
PROBE_OPTIONS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("--collector", {"metavar": "URL", "type": collector_url},
     "collector base URL, used as the uncensored control (for enrolled agents)"),
    ("--state-dir", {"metavar": "DIR"},
     "the enrolled agent's state, whose key signs control requests (default: the daemon's)"),
    ("--resolver", {"metavar": "IP", "type": ip_address, "action": "append", "default": []},
     "public resolver to query as well (repeatable)"),
    ("--benign-sni", {"metavar": "NAME", "type": host_name, "default": "example.com"},
     "name the censor has no reason to block, for the SNI and Host swaps (default: %(default)s)"),
    ("--ca-file", {"metavar": "PATH", "type": existing_file},
     "extra CA certificates (PEM) to trust, for the sites and the collector"),
    ("--fingerprints", {"metavar": "PATH", "action": "append", "default": []},
     "blockpage fingerprint CSV, OONI schema (repeatable; default: the --collector's)"),
    ("--concurrency", {"metavar": "N", "type": positive_int, "default": 16},
     "targets measured at once (default: %(default)s)"),
    ("--timeout", {"metavar": "S", "type": seconds, "default": 5.0},
     "seconds per network operation (default: %(default)s)"),
    ("--json", {"action": "store_true"}, "one JSON object per target per line on stdout"),
    ("--msgpack-out", {"metavar": "FILE"}, "append each result's wire record (msgpack) to FILE"),
    ("--throttle", {"action": "store_true"},
     "run the throttle test instead, one target at a time, through the collector's far end"),
    ("--protocols", {"action": "store_true"},
     "run the protocol test instead (QUIC with the target's SNI, WireGuard, OpenVPN), "
     "through the collector's far end"),
    ("--trace", {"action": "store_true"},
     "trace each blocked target: where along the path its censor sits (needs CAP_NET_RAW)"),
    ("--quiet", {"action": "store_true"},
     "no table and no progress bar; only warnings and the summary"),
)  # fmt: skip
