"""Redirect chains (agent.verdict.chain, docs/design/002-verdicts.md): which hop is measured
next, the hop a verdict names, and chains no browser would finish."""

from __future__ import annotations

import dataclasses

import pytest

from agent.model import failures as f
from agent.model.measurement import Hop, Target, Vantage
from agent.verdict import judge_chain
from agent.verdict.chain import MAX_REDIRECTS, resolve
from tests.agent.observations import cut, endpoint, handshake, page, tcp, vantage

START = Target.parse("http://wikipedia.org/")


def moved(location: str | None, status: int = 302, scheme: str = "http") -> Vantage:
    """A vantage whose page redirects to ``location``."""
    answer = dataclasses.replace(page(status, title=None), location=location)
    return vantage(scheme=scheme, endpoints=(endpoint(scheme=scheme, http=answer),))


def hop(url: str, agent: Vantage, control: Vantage | None = None) -> Hop:
    return Hop(url, agent, control if control is not None else agent, None)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_clean_redirect_is_followed(status: int) -> None:
    view = moved("https://www.wikipedia.org/", status)
    verdict, following = judge_chain(START, view, view)
    assert verdict.verdict == "ok"
    assert following is not None
    assert following.url == "https://www.wikipedia.org/"


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("/wiki/Main?x=1", "http://wikipedia.org/wiki/Main?x=1"),
        ("wiki", "http://wikipedia.org/wiki"),
        ("//www.wikipedia.org/", "http://www.wikipedia.org/"),
        ("HTTPS://WWW.Wikipedia.org:443/#top", "https://www.wikipedia.org/"),
    ],
)
def test_relative_and_absolute_locations(location: str, url: str) -> None:
    assert (resolved := resolve(START.url, location)) is not None
    assert resolved.url == url


@pytest.mark.parametrize(
    "location",
    ["ftp://wikipedia.org/", "javascript:alert(1)", "tel:123", "http://[::1", "https://"],
)
def test_a_location_no_browser_follows_is_a_broken_chain(location: str) -> None:
    view = moved(location)
    verdict, following = judge_chain(START, view, view)
    assert following is None
    assert verdict.verdict == "down"
    assert verdict.evidence["failure"] == f.REDIRECT_BAD_LOCATION
    assert verdict.evidence["redirect_hop"] == 0


def test_a_block_behind_a_redirect_names_the_hop_and_its_host() -> None:
    first = moved("https://x.com/")
    reset = vantage(endpoints=(endpoint(tls=handshake("x.com", failure=f.CONNECTION_RESET)),))
    fine = vantage(endpoints=(endpoint(tls=handshake("x.com")),))
    verdict, following = judge_chain(START, first, first, (hop("https://x.com/", reset, fine),))
    assert following is None
    assert verdict.verdict == "tls.reset"
    assert verdict.evidence["redirect_hop"] == 1
    assert verdict.evidence["redirect_host"] == "x.com"


def test_the_chain_stops_at_the_first_hop_that_is_not_ok() -> None:
    first = moved("http://t.co/a")
    cut_view = vantage(scheme="http", endpoints=(endpoint(scheme="http", http=cut()),))
    open_view = vantage(scheme="http")
    hops = (hop("http://t.co/a", cut_view, open_view), hop("https://x.com/", open_view))
    verdict, following = judge_chain(START, first, first, hops)
    assert following is None
    assert verdict.evidence["redirect_hop"] == 1


def test_a_loop_shared_by_the_control_is_down() -> None:
    a, b = moved("http://b.example/"), moved("http://wikipedia.org/")
    verdict, following = judge_chain(START, a, a, (hop("http://b.example/", b),))
    assert following is None
    assert (verdict.verdict, verdict.evidence["failure"]) == ("down", f.REDIRECT_LOOP)


def test_a_broken_chain_the_control_does_not_share_is_inconclusive() -> None:
    mine, theirs = moved("http://wikipedia.org/"), moved("https://wikipedia.org/")
    verdict, _ = judge_chain(START, mine, theirs)
    assert verdict.verdict == "inconclusive"
    assert verdict.evidence["failure"] == f.REDIRECT_LOOP


def test_no_more_than_the_limit_of_redirects() -> None:
    hops = tuple(
        hop(f"http://wikipedia.org/{i}", moved(f"/{i + 1}")) for i in range(1, MAX_REDIRECTS + 1)
    )
    first = moved("/1")
    verdict, following = judge_chain(START, first, first, hops[:-1])
    assert verdict.verdict == "ok"
    assert following is not None
    verdict, following = judge_chain(START, first, first, hops)
    assert following is None
    assert verdict.evidence == {
        "failure": f.REDIRECT_LIMIT,
        "redirect_hop": MAX_REDIRECTS,
        "location": f"/{MAX_REDIRECTS + 1}",
    }


def test_a_chain_that_ends_well_is_a_bare_ok() -> None:
    first, final = moved("https://wikipedia.org/"), vantage()
    verdict, following = judge_chain(START, first, first, (hop("https://wikipedia.org/", final),))
    assert following is None
    assert (verdict.verdict, verdict.evidence) == ("ok", {})


def test_a_redirect_without_location_is_a_final_page() -> None:
    view = moved(None)
    assert judge_chain(START, view, view) == (judge_chain(START, view, view)[0], None)
    assert judge_chain(START, view, view)[0].verdict == "ok"


def test_a_failed_first_url_is_never_followed() -> None:
    dead = vantage(scheme="http", endpoints=(endpoint(scheme="http", tcp=tcp(failure="x")),))
    assert judge_chain(START, dead, moved("https://wikipedia.org/"))[1] is None
