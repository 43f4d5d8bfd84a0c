"""Benchmarks: map a Citizen Lab test list onto the censor lab.

Every distinct host of the list becomes a scenario row, with a technique taken
in rotation from those that involve no timeout (so a benchmark measures
throughput, not waiting). Techniques that match names on the wire are only
given to hosts that no other host contains, as the scenario table requires.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.lab.scenarios import DUAL_STACK, TECHNIQUES, ScenarioTable, parse

BENIGN = "example.com"
# (technique, hop, expected verdict, schemes it applies to); clean rows dominate, as in life.
ROTATION = (
    ("clean", "none", "ok", ("http", "https")),
    ("sni-reset", "border", "tls.reset", ("https",)),
    ("clean", "none", "ok", ("http", "https")),
    ("dns-nxdomain", "isp", "dns.nxdomain", ("http", "https")),
    ("clean", "none", "ok", ("http", "https")),
    ("http-blockpage", "isp", "http.blockpage", ("http",)),
    ("tls-intercept", "isp", "tls.mitm", ("https",)),
    ("clean", "none", "ok", ("http", "https")),
    ("dns-bogon", "isp", "dns.bogon", ("http", "https")),
    ("ip-reset", "isp", "tcp.refused", ("http", "https")),
    ("host-reset", "isp", "http.reset", ("http",)),
    ("clean", "none", "ok", ("http", "https")),
    ("dns-redirect", "isp", "dns.mismatch", ("http",)),
    ("down", "none", "down", ("http", "https")),
    # As most real sites do: http redirects to https on the same host, a two-hop chain.
    ("redirect", "none", "ok", ("http",)),
    ("clean", "none", "ok", ("http", "https")),
)


def read_urls(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["url"].strip() for row in csv.DictReader(handle) if row.get("url")]


def table_for(
    urls: list[str], source: Path, *, dual_stack: bool = False
) -> tuple[ScenarioTable, list[str]]:
    """A scenario table covering every host of ``urls``; also the URLs to probe. The sites
    are IPv4 only (their records still carry the AAAA queries) unless ``dual_stack``."""
    hosts: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname and parts.scheme in ("http", "https"):
            hosts.setdefault(parts.hostname.lower().rstrip("."), parts.scheme)
    names = [BENIGN, *[h for h in hosts if h != BENIGN]]
    rows: list[dict[str, Any]] = [
        {"domain": BENIGN, "technique": "clean", "hop": "none", "expected": "ok"}
    ]
    turn = 0
    for host, scheme in hosts.items():
        if host == BENIGN:
            continue
        technique, hop, expected, schemes = ROTATION[turn % len(ROTATION)]
        contained = any(host in other for other in names if other != host)
        parent = any(other.endswith(f".{host}") for other in names)
        kind = TECHNIQUES[technique]
        if (
            scheme not in schemes
            or (kind.string_match and contained)
            or (kind.covers_subdomains and parent)
        ):
            technique, hop, expected = "clean", "none", "ok"
        else:
            turn += 1
        row = {"domain": host, "technique": technique, "hop": hop, "expected": expected,
               "scheme": scheme, "ipv6": dual_stack and technique in DUAL_STACK}  # fmt: skip
        if technique == "redirect":
            row["params"] = {"to": f"https://{host}/", "status": "301", "from_scheme": "http"}
        rows.append(row)
    table = parse({"benign_domain": BENIGN, "scenario": rows}, source)
    return table, urls
