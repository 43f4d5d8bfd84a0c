"""Lab self-tests: every scenario's censor acts as configured, seen with plain clients."""

from __future__ import annotations

import pytest

from tests.lab import checks
from tests.lab.lab import Lab
from tests.lab.scenarios import load

TABLE = load()
ROWS = [row for row in TABLE.rows if row.technique not in checks.DISRUPTIVE]
DISRUPTIVE_ROWS = [row for row in TABLE.rows if row.technique in checks.DISRUPTIVE]

pytestmark = pytest.mark.lab


def test_every_technique_has_a_check() -> None:
    assert {row.technique for row in TABLE.rows} <= set(checks.CHECKS)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.technique}:{r.domain}" for r in ROWS])
def test_censor_acts_as_configured(lab: Lab, row: checks.Scenario) -> None:
    result = checks.check(lab, row)
    assert result.passed, f"{row.domain} ({row.technique} at {row.hop}): {result.observed}"


@pytest.mark.parametrize("row", DISRUPTIVE_ROWS, ids=[r.technique for r in DISRUPTIVE_ROWS])
def test_disruptive_scenario(lab: Lab, row: checks.Scenario) -> None:
    result = checks.check(lab, row)
    assert result.passed, f"{row.domain} ({row.technique}): {result.observed}"
    assert not lab.is_shut_down()


def test_clean_rows_resolve_identically_everywhere(lab: Lab) -> None:
    """The ISP resolver, the public resolver and the control agree on clean names."""
    for row in TABLE.by_technique("clean"):
        system = checks.client(lab, "agent", "dns_system", name=row.domain)
        control = checks.client(lab, "net", "dns_udp", server="198.51.100.8", name=row.domain)
        assert system["answers"] == [row.ip]
        assert [reply["answers"] for reply in control["replies"]] == [[row.ip]]
