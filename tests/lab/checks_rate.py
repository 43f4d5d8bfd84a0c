"""Censor lab: the self-checks of the rate techniques, with plain clients: a throttled name
(``throttle``), and a slow or lossy link (``link-slow``, ``link-lossy``), all measured as a
download's rate. Registered in ``tests.lab.checks.CHECKS``, which this module imports only
when a check runs, since that module imports this one for its table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.lab.checks import CheckResult
    from tests.lab.lab import Lab
    from tests.lab.scenarios import Scenario

__all__ = [
    "THROTTLE_BYTES",
    "THROTTLE_MIN_RATIO",
    "THROTTLE_TOLERANCE",
    "check_link_lossy",
    "check_link_slow",
    "check_throttle",
    "rate_kbps",
]

THROTTLE_BYTES = 1024 * 1024  # more than any throttled rate moves in the window
THROTTLE_MIN_RATIO = 5.0
THROTTLE_TOLERANCE = 0.25


def _rates(lab: Lab, row: Scenario, role: str = "agent") -> tuple[dict[str, Any], ...]:
    """The row's download rate through its own site, naming it and naming the benign name."""
    from tests.lab.checks import client

    out = []
    for name in (row.domain, lab.table.benign_domain):
        sni = name if row.scheme == "https" else None
        out.append(
            client(lab, role, "rate", ip=row.ip, host=name, size=THROTTLE_BYTES, tls_sni=sni)
        )
    return tuple(out)


def _kbps(result: dict[str, Any]) -> float:
    return (result.get("rate_bps") or 0) / 1000


def check_throttle(lab: Lab, row: Scenario) -> CheckResult:
    """Naming the row holds a download near its rate; the benign name runs far faster."""
    from tests.lab.checks import _result
    from tests.lab.throttling import DEFAULT_THROTTLE_RATE

    real, benign = _rates(lab, row)
    limit = rate_kbps(row.params.get("rate", DEFAULT_THROTTLE_RATE))
    ratio = _kbps(benign) / _kbps(real) if _kbps(real) else float("inf")
    passed = (
        real["error"] is None
        and benign["error"] is None
        and abs(_kbps(real) - limit) <= THROTTLE_TOLERANCE * limit
        and ratio >= THROTTLE_MIN_RATIO
    )
    via = "SNI" if row.scheme == "https" else "Host"
    observed = (
        f"{via} {row.domain}: {_kbps(real):.0f} kbit/s (limit {limit:.0f}); "
        f"benign {via}: {_kbps(benign) / 1000:.0f} Mbit/s (x{ratio:.0f})"
    )
    return _result(row, passed, observed, real=real, benign=benign, ratio=ratio)


def _link(lab: Lab, row: Scenario) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Two names' rates through the row's site with its link condition on, then off."""
    from tests.lab.throttling import set_link_condition

    set_link_condition(lab, row, True)
    try:
        during = _rates(lab, row)
    finally:
        set_link_condition(lab, row, False)
    return during, _rates(lab, row)


def check_link_slow(lab: Lab, row: Scenario) -> CheckResult:
    """Every name is held near the link's rate while it is slow, and runs free after."""
    from tests.lab.checks import _result

    (named, benign), (after, _) = _link(lab, row)
    limit = rate_kbps(row.params.get("rate", "2mbit"))
    near = [abs(_kbps(r) - limit) <= THROTTLE_TOLERANCE * limit for r in (named, benign)]
    passed = all(near) and _kbps(after) >= THROTTLE_MIN_RATIO * limit
    observed = (
        f"slow link: {_kbps(named):.0f} and {_kbps(benign):.0f} kbit/s (rate {limit:.0f}); "
        f"restored: {_kbps(after) / 1000:.0f} Mbit/s"
    )
    return _result(row, passed, observed)


def check_link_lossy(lab: Lab, row: Scenario) -> CheckResult:
    """Transfers still work on the lossy link, below its rate, and the drop rules drop."""
    from tests.lab.checks import _result
    from tests.lab.throttling import set_link_condition

    set_link_condition(lab, row, True)
    try:
        during = _rates(lab, row)
        counters = lab.run("isp", ["iptables", "-L", "FORWARD", "-v", "-x", "-n"]).stdout
    finally:
        set_link_condition(lab, row, False)
    dropped = sum(int(line.split()[0]) for line in counters.splitlines() if "statistic" in line)
    limit = rate_kbps(row.params.get("rate", "2mbit"))
    # A lost SYN or a stall can cost a transfer its window; one of the two must get through,
    # and none faster than the link.
    moved = [r for r in during if r["error"] is None and _kbps(r) > 0]
    passed = bool(moved) and all(_kbps(r) <= 1.25 * limit for r in during) and dropped > 0
    rates = " and ".join(f"{_kbps(r):.0f}" for r in during)
    return _result(row, passed, f"lossy link: {rates} kbit/s, {dropped} packets dropped")


def rate_kbps(rate: str) -> float:
    """A tc rate (``150kbit``, ``2mbit``) in kbit/s."""
    units = {"bit": 0.001, "kbit": 1.0, "mbit": 1000.0, "gbit": 1e6}
    number = rate.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units[rate[len(number) :]]
