"""Lab fixtures: the real collector, serving controls from the lab's net namespace to the
probe identity it enrolled (``tests.lab.engine.probe_state_dir``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.serving import serving
from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.lab import Lab

__all__ = ["COLLECTOR_URL", "collector"]


@pytest.fixture(scope="module")
def collector(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCollector]:
    yield from serving(LabCollector(lab, tmp_path_factory.mktemp("collector")))
