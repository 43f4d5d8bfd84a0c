"""agent.probes.dns: A and AAAA, from the system resolver and from every public resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.model import failures
from agent.probes.dns import measure
from tests.security.test_control_harness import fake_dns

ANSWERS = {"dual.test": [["127.77.0.9", "2001:db8::9"]], "four.test": [["127.77.0.8"]]}


@pytest.mark.asyncio
async def test_both_families_are_asked_of_every_resolver(tmp_path: Path) -> None:
    async with fake_dns(tmp_path, ANSWERS) as (server, resolv_conf):
        resolver = Path(resolv_conf).read_text().split()[1]
        seen = await measure("dual.test", [resolver], resolv_conf=resolv_conf, window=0.05)
    assert sorted(server.queries + server.others) == ["dual.test"] * 4
    assert (seen.system.qtype, seen.system.addresses) == ("A", ("127.77.0.9",))
    assert seen.system6 is not None
    assert (seen.system6.qtype, seen.system6.addresses) == ("AAAA", ("2001:db8::9",))
    assert [(e.qtype, e.replies[0].addresses) for e in seen.public] == [("A", ("127.77.0.9",))]
    assert [(e.qtype, e.replies[0].addresses) for e in seen.public6] == [("AAAA", ("2001:db8::9",))]
    assert seen.addresses == ("127.77.0.9", "2001:db8::9")


@pytest.mark.asyncio
async def test_a_site_without_ipv6_gets_an_empty_aaaa_answer(tmp_path: Path) -> None:
    async with fake_dns(tmp_path, ANSWERS) as (_server, resolv_conf):
        seen = await measure("four.test", [], resolv_conf=resolv_conf)
    assert seen.system6 is not None
    assert (seen.system6.rcode, seen.system6.failure) == ("NOERROR", failures.DNS_NO_ANSWER)
    assert seen.addresses == ("127.77.0.8",)
