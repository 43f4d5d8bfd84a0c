"""The protocol test's verdict rule (agent.verdict.protocols), on built probes."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from agent.model import failures as f
from agent.model.protocols import SHAPES, ProtocolObservation, ProtocolProbe
from agent.model.verdicts import VERDICTS
from agent.verdict.protocols import decide_protocols

FAR = ("quic", "quic-benign", "wireguard", "openvpn-udp", "openvpn-tcp")
TWINS = ("quic", "wireguard", "openvpn-udp", "openvpn-tcp")


def probe(shape: str, answered: bool = True, *, random: bool = False, site: bool = False,
          failure: str | None = None) -> ProtocolProbe:  # fmt: skip
    return ProtocolProbe(shape, random, site, 100, answered, 5.0, 1, failure)


def observed(lost: Iterable[str] = (), lost_twins: Iterable[str] = (),
             site: tuple[ProtocolProbe, ...] = ()) -> ProtocolObservation:  # fmt: skip
    lost, lost_twins = set(lost), set(lost_twins)
    probes = [probe(shape, shape not in lost) for shape in FAR]
    probes += [probe(shape, shape not in lost_twins, random=True) for shape in TWINS]
    return ProtocolObservation("x.com", "example.com", "198.51.100.9", 443, 80,
                               probes=(*probes, *site))  # fmt: skip


def test_everything_echoed_is_ok() -> None:
    verdict = decide_protocols(observed())
    assert verdict.verdict == "ok"
    assert verdict.evidence["site_quic"] == "not tested"


def test_quic_naming_the_target_lost_while_the_benign_name_passed_is_sni_blocking() -> None:
    verdict = decide_protocols(observed(lost=["quic"]))
    assert verdict.verdict == "quic.blocked"
    assert verdict.evidence == {
        "site_quic": "not tested", "trigger": "sni", "where": "far end", "name": "x.com",
    }  # fmt: skip


def test_every_quic_initial_lost_is_protocol_blocking() -> None:
    verdict = decide_protocols(observed(lost=["quic", "quic-benign"]))
    assert verdict.verdict == "quic.blocked"
    assert verdict.evidence["trigger"] == "quic"
    assert "name" not in verdict.evidence


def test_vpn_shapes_lost_are_vpn_blocking_with_their_shapes() -> None:
    verdict = decide_protocols(observed(lost=["wireguard", "openvpn-tcp"]))
    assert verdict.verdict == "vpn.blocked"
    assert verdict.evidence["trigger"] == "wireguard,openvpn-tcp"


def test_quic_and_vpn_both_blocked_name_quic_and_list_vpn() -> None:
    verdict = decide_protocols(observed(lost=["quic", "wireguard"]))
    assert verdict.verdict == "quic.blocked"
    assert verdict.evidence["vpn"] == "wireguard"


def test_a_shape_whose_twin_was_lost_too_proves_nothing() -> None:
    verdict = decide_protocols(observed(lost=["wireguard"], lost_twins=["wireguard"]))
    assert verdict.verdict == "ok"
    assert verdict.evidence["undecided"] == "wireguard"
    lost = decide_protocols(observed(lost=FAR, lost_twins=TWINS))
    assert lost.verdict == "inconclusive"
    assert lost.evidence["reason"] == "the far end echoed no twin"
    quic = decide_protocols(observed(lost=["quic"], lost_twins=["quic"]))
    assert quic.verdict == "inconclusive"
    assert quic.evidence["reason"] == "the QUIC twin was lost"


def test_a_test_that_could_not_run_is_inconclusive() -> None:
    obs = ProtocolObservation("x.com", "example.com", failure="farend_udp_silent")
    assert decide_protocols(obs).verdict == "inconclusive"


def test_the_site_decides_when_its_benign_initial_reached_it() -> None:
    refused = (probe("quic", False, site=True),
               probe("quic-benign", False, site=True, failure=f.CONNECTION_REFUSED))  # fmt: skip
    verdict = decide_protocols(observed(site=refused))
    assert verdict.verdict == "quic.blocked"
    assert verdict.evidence["where"] == "site"
    assert verdict.evidence["site_quic"] == "silent"
    both = decide_protocols(observed(lost=["quic"], site=refused))
    assert both.evidence["where"] == "far end and site"


def test_a_site_that_speaks_no_quic_proves_nothing() -> None:
    silent = (probe("quic", False, site=True), probe("quic-benign", False, site=True))
    verdict = decide_protocols(observed(site=silent))
    assert verdict.verdict == "ok"
    assert verdict.evidence["site_quic"] == "silent"
    answered = (probe("quic", site=True), probe("quic-benign", site=True))
    assert decide_protocols(observed(site=answered)).evidence["site_quic"] == "answered"


_PROBES = st.builds(
    ProtocolProbe, st.sampled_from(SHAPES), st.booleans(), st.booleans(), st.integers(0, 1500),
    st.booleans(), st.floats(0, 1e4), st.integers(0, 5),
    st.sampled_from([None, f.CONNECTION_REFUSED, f.CONNECTION_RESET]),
)  # fmt: skip


@given(st.lists(_PROBES, max_size=12), st.sampled_from([None, "farend_udp_silent"]))
def test_decide_is_total_and_speaks_the_taxonomy(probes: list[ProtocolProbe],
                                                 failure: str | None) -> None:  # fmt: skip
    obs = ProtocolObservation("x.com", "example.com", probes=tuple(probes), failure=failure)
    verdict = decide_protocols(obs)
    assert verdict.verdict in VERDICTS
    assert verdict.verdict in {"ok", "inconclusive", "quic.blocked", "vpn.blocked"}
