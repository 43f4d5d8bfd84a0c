"""The verdict rules (docs/design/002-verdicts.md), overall: ok, offline, no endpoints."""

from __future__ import annotations

from dataclasses import replace

from agent.model import failures as f
from agent.model.measurement import Vantage, Verdict
from agent.model.verdicts import VERDICTS
from tests.agent.observations import endpoint, vantage
from tests.agent.verdict.cases import assert_verdict, judge


def test_clean_site_is_ok() -> None:
    assert judge(vantage(), vantage()) == Verdict("ok")
    assert judge(vantage(scheme="http"), vantage(scheme="http"), http=True) == Verdict("ok")


def test_offline_beats_everything() -> None:
    agent = vantage(failure=f.GENERIC_TIMEOUT, endpoints=())
    assert judge(agent, None, online=False) == Verdict("offline")
    assert judge(vantage(), vantage(), online=False) == Verdict("offline")
    assert judge(vantage(), vantage(), online=True) == Verdict("ok")


def test_no_control_and_everything_works_is_ok() -> None:
    assert judge(vantage()) == Verdict("ok")


def test_no_endpoints_is_inconclusive() -> None:
    assert_verdict(judge(vantage(endpoints=()), vantage()), "inconclusive", reason="no endpoints")


def test_empty_views_never_raise() -> None:
    empty = Vantage(dns=vantage(failure=f.GENERIC_TIMEOUT, public=()).dns, endpoints=())
    for control in (None, empty, vantage(endpoints=())):
        assert judge(empty, control).verdict in VERDICTS
    odd = replace(endpoint(), tls=None, http=None)
    assert judge(vantage(endpoints=(odd,)), vantage()) == Verdict("ok")
    assert judge(vantage(endpoints=(odd,)), vantage(endpoints=(odd,))) == Verdict("ok")
