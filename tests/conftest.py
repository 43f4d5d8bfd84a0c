"""Shared fixtures: the censor lab, brought up once per test session.

Lab tests need root and the lab's tools. A developer without them gets a skip
that says why; under CI (CI=true) the same condition is a failure, because a
lab test that silently skips proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.lab.lab import Lab
from tests.lab.shell import missing_tools


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "censor lab tests need root (network namespaces, iptables); run as root"
    missing = missing_tools()
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        return (
            f"censor lab tools missing: {', '.join(sorted(missing))} (apt-get install {packages})"
        )
    return None


def require_lab() -> None:
    reason = lab_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the lab tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_lab()
    with Lab() as running:
        yield running
