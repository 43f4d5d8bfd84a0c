"""End-to-end tests: a lab collector for the length of a fixture, started or failed cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.collector import LabCollector
from tests.lab.shell import LabError


def serving(collector: LabCollector) -> Iterator[LabCollector]:
    """Starts ``collector`` (a test failure, without a traceback, if it cannot start), yields
    it, and stops it: the body of a fixture."""
    try:
        collector.start()
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield collector
    finally:
        collector.stop()
