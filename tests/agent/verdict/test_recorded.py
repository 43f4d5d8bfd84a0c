"""Verdicts on observations recorded in the censor lab (``python -m tests.lab record``).

The records are real wire records of every scenario, measured by the CLI behind the
lab's censors, with the collector's control and without it. Decoding them and running
``decide`` again must reproduce the recorded verdict exactly (this is what the
collector's reclassification relies on), and that verdict must be the table's.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest

from agent.fingerprints import FingerprintSet, load
from agent.model.measurement import SiteMeasurement, Target
from agent.verdict import redecide
from agent.wire.record import measurement_from_obj
from tests.agent.observations import RECORDED
from tests.lab.protocol_censors import PROTOCOL_TECHNIQUES
from tests.lab.scenarios import load as load_table
from tests.shared_data import shared_file

TABLE = load_table()
# Rows judged by a test of their own (probe --throttle, --protocols), not recorded here.
OWN_TESTS = {"throttle", *PROTOCOL_TECHNIQUES}
# Without a control these rows are decided from local evidence alone.
LOCAL = {
    "clean", "dns-inject", "sni-reset", "host-reset", "dns-bogon", "http-blockpage",
    "dns-ghost", "sni-fin", "host-fin",
}  # fmt: skip


def records(name: str) -> Iterator[SiteMeasurement]:
    with (RECORDED / name).open("rb") as handle:
        for obj in msgpack.Unpacker(handle, raw=False):
            yield measurement_from_obj(obj)


@pytest.fixture(scope="module")
def fingerprints() -> FingerprintSet:
    return load([shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv")])


def decide_again(m: SiteMeasurement, fingerprints: FingerprintSet) -> str:
    verdict = redecide(m, fingerprints)
    assert verdict == m.verdict, f"{m.url}: recorded {m.verdict}, decided again {verdict}"
    return verdict.verdict


def test_with_control_every_row_has_its_expected_verdict(fingerprints: FingerprintSet) -> None:
    seen = {}
    for m in records("with-control.msgpack"):
        row = TABLE.domain(Target.parse(m.url).host)
        seen[row.domain] = decide_again(m, fingerprints)
        assert m.control is not None or row.technique == "shutdown"
        assert seen[row.domain] == row.expected, f"{row.domain} ({row.technique})"
    assert set(seen) == {r.domain for r in TABLE.rows if r.technique not in OWN_TESTS}


def test_without_control_local_evidence_decides_or_says_inconclusive(
    fingerprints: FingerprintSet,
) -> None:
    count = 0
    for m in records("without-control.msgpack"):
        row = TABLE.domain(Target.parse(m.url).host)
        verdict = decide_again(m, fingerprints)
        assert m.control is None
        if row.technique in LOCAL or row.technique == "shutdown":
            assert verdict == row.expected, f"{row.domain} ({row.technique})"
        else:
            # Never a wrong accusation: the right verdict, or an honest "cannot tell".
            assert verdict in (row.expected, "inconclusive"), f"{row.domain}: {verdict}"
        count += 1
    assert count == len([r for r in TABLE.rows if r.technique not in OWN_TESTS])
