"""Browser test fixtures: the lab site (once per module) and one headless chromium.

Browser tests need root (the lab, and chromium without its sandbox) and Debian's chromium
and chromedriver. A developer without them gets a skip that says why; under CI (CI=true)
it is a failure, as for the lab tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium
from tests.browser.lab_site import LabSite, lab_site
from tests.conftest import require_lab
from tests.lab.lab import Lab


def require_browser() -> None:
    require_lab()
    reason = chromium.missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Before the lab comes up: without a browser it is not worth starting."""
    require_browser()


@pytest.fixture(scope="module")
def site(
    browser_ready: None, lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabSite]:
    yield from lab_site(lab, tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def driver(site: LabSite) -> Iterator[Any]:
    with chromium.browser() as running:
        yield running


@pytest.fixture
def screenshots() -> str | None:
    """Where the tests save their screenshots (NETSONDE_SCREENSHOTS), or None: not saved."""
    return os.environ.get("NETSONDE_SCREENSHOTS") or None
