"""Fingerprints as the collector serves them: ``dump`` writes the CSV that ``parse`` (the
agent's one loader) reads back unchanged, from the real OONI files and from odd patterns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.fingerprints import Fingerprint, FingerprintSet, dump, load, parse
from tests.shared_data import shared_file


def test_the_ooni_files_survive_a_round_trip_and_shrink() -> None:
    paths = [shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv")]
    real = load(paths)
    served = dump(real)
    again = parse(served, "collector")
    assert again.fingerprints == real.fingerprints
    assert again.problems == ()
    assert len(real) > 1500
    # Notes, sources and other names stay behind: what is served is smaller than the files.
    assert len(served.encode()) < 0.7 * sum(p.stat().st_size for p in paths)
    # The same matches, in the same order of preference.
    page = "This URL has been blocked under the instructions of the Competent Authority"
    assert again.match_body(page) == real.match_body(page)


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(
    name=_text.filter(lambda s: s.strip() == s),
    pattern=_text.filter(lambda s: s.strip()),
    location=st.sampled_from(["body", "dns", "header.server", "header.location"]),
    pattern_type=st.sampled_from(["full", "prefix", "contains"]),
    confidence=st.integers(0, 10),
    countries=st.lists(st.sampled_from(["PK", "IR", "RU"]), max_size=3),
)
def test_any_pattern_survives_a_round_trip(
    name: str, pattern: str, location: str, pattern_type: str, confidence: int, countries: list[str]
) -> None:
    # Quotes, commas, line breaks and spaces at the edges included.
    fp = Fingerprint(name, "isp", location, pattern_type, pattern, confidence, tuple(countries))
    assert parse(dump(FingerprintSet([fp])), "c").fingerprints == (fp,)


def test_an_empty_set_is_a_header() -> None:
    served = dump(FingerprintSet([]))
    assert served.startswith("name,scope,location_found,pattern_type,pattern,")
    assert served.endswith("\r\n")
    assert served.count("\n") == 1
    assert len(parse(served, "c")) == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html><title>Sign in to the hotel wifi</title></html>",
        "url,category_code\nhttps://example.com/,NEWS\n",
        # One field past the csv module's limit: not CSV any more.
        "name,scope,location_found,pattern_type,pattern\nx,isp,body,contains," + "a" * 200_000,
    ],
)
def test_what_is_no_fingerprint_csv_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="c"):
        parse(text, "c")


def test_bad_rows_are_named_by_the_source() -> None:
    text = (
        "name,scope,location_found,pattern_type,pattern\n"
        "good,isp,body,contains,blocked\n"
        "bad,isp,body,glob,*\n"
    )
    found = parse(text, "collector")
    assert [fp.name for fp in found.fingerprints] == ["good"]
    assert found.problems == ("collector:3: unknown pattern_type 'glob'",)
