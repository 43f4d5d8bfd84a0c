"""Lab self-test: the FIN injectors keep answering after the ISP's link went down and up
(the shutdown row does that mid-session), as a censor's box does once the link is back."""

from __future__ import annotations

import pytest

from tests.lab import checks
from tests.lab.lab import Lab

pytestmark = pytest.mark.lab


def test_fin_injection_survives_a_link_that_went_down(lab: Lab) -> None:
    rows = lab.table.by_technique("sni-fin") + lab.table.by_technique("host-fin")
    assert {row.hop for row in rows} == {"isp", "border"}, "one FIN row on each hop"
    lab.shutdown(True)
    lab.shutdown(False)
    for row in rows:
        result = checks.check(lab, row)
        assert result.passed, f"{row.domain} ({row.technique} at {row.hop}): {result.observed}"
