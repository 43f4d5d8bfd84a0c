"""Blockpage fingerprint matching against the real OONI CSVs and small synthetic ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.fingerprints import (
    Fingerprint,
    FingerprintFileError,
    FingerprintSet,
    load,
)
from tests.shared_data import shared_file

HEADER = (
    "name,scope,other_names,location_found,pattern_type,pattern,"
    "confidence_no_fp,expected_countries,source,exp_url,notes\n"
)

PAKISTAN_BLOCKPAGE = (
    "<html><body>This URL has been blocked under the instructions of the Competent Authority "
    "and is prohibited for viewership from within Pakistan.</body></html>"
)
NORMAL_PAGE = (
    "<!doctype html><html><head><title>Daily news</title></head>"
    "<body><h1>Weather</h1><p>Sunny with light winds in the afternoon.</p></body></html>"
)


@pytest.fixture(scope="module")
def real() -> FingerprintSet:
    return load([shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv")])


def write_csv(tmp_path: Path, rows: list[str], name: str = "fp.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_real_files_load_cleanly(real: FingerprintSet) -> None:
    assert real.problems == ()
    assert len(real) > 1500


def test_pakistan_national_blockpage(real: FingerprintSet) -> None:
    for body in (PAKISTAN_BLOCKPAGE, PAKISTAN_BLOCKPAGE.encode()):
        match = real.match_body(body)
        assert match is not None
        assert match.fingerprint.name == "cp.b_nat_pak_isp_common_blockpage"
        assert not match.false_positive


@pytest.mark.parametrize(
    ("ip", "name"), [("203.82.48.83", "ooni.pk_3"), ("203.82.48.86", "ooni.pk_4")]
)
def test_nayatel_dns_blockpage_ips(real: FingerprintSet, ip: str, name: str) -> None:
    match = real.match_dns(["8.8.8.8", ip])
    assert match is not None
    assert match.fingerprint.name == name
    assert match.fingerprint.countries == ("PK",)


def test_wateen_location_header(real: FingerprintSet) -> None:
    headers = {"Content-Type": "text/html", "LOCATION": "http://restrict.wateen.net/block?u=x"}
    match = real.match_headers(headers)
    assert match is not None
    assert match.fingerprint.name == "cp.c_isp_pk_wateen_location"


def test_normal_page_matches_nothing(real: FingerprintSet) -> None:
    assert real.match_body(NORMAL_PAGE) is None
    assert real.match_headers({"Server": "nginx", "Content-Type": "text/html"}) is None
    assert real.match_dns(["93.184.216.34"]) is None


def test_real_false_positive(real: FingerprintSet) -> None:
    match = real.match_body("<html><p><em>Thank you for using nginx.</em></p></html>")
    assert match is not None
    assert match.false_positive
    assert match.fingerprint.is_false_positive


def test_each_pattern_type(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        [
            "t.full,isp,,dns,full,10.10.34.35,5,IR,test,,",
            "t.prefix,isp,,header.location,prefix,http://block.example/,5,,test,,",
            "t.contains,nat,,body,contains,access denied by order,5,,test,,",
            r"t.regexp,nat,,body,regexp,ticket-[0-9]{4}\b,5,,test,,",
            "t.name,isp,,dns,full,blocked.example,5,,test,,",
        ],
    )
    fps = load([path])
    assert fps.problems == ()

    def body(text: str) -> str | None:
        m = fps.match_body(text)
        return None if m is None else m.fingerprint.name

    def dns(*answers: str) -> str | None:
        m = fps.match_dns(answers)
        return None if m is None else m.fingerprint.name

    def loc(value: str) -> str | None:
        m = fps.match_headers({"Location": value})
        return None if m is None else m.fingerprint.name

    assert dns("10.10.34.35") == "t.full"
    assert dns("10.10.34.350") is None  # full means equality, not prefix
    assert dns("blocked.example.") == "t.name"  # absolute name as dnspython prints it
    assert loc("http://block.example/?u=1") == "t.prefix"
    assert loc("https://x/?next=http://block.example/") is None  # prefix, not contains
    assert body("<p>Access denied by order</p>") is None  # case-sensitive
    assert body("<p>access denied by order of court</p>") == "t.contains"
    assert body("your ticket-1234 was logged") == "t.regexp"
    assert body("your ticket-12345 was logged") is None
    assert fps.match_headers({"Server": "http://block.example/"}) is None  # other header


def test_real_beats_false_positive_then_confidence(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        [
            "t.fp,fp,,body,contains,nginx,10,,test,,",
            "t.low,isp,,body,contains,blocked,5,,test,,",
            "t.high,nat,,body,contains,is blocked here,9,,test,,",
        ],
    )
    fps = load([path])
    only_fp = fps.match_body("welcome to nginx")
    assert only_fp is not None
    assert only_fp.false_positive
    assert only_fp.fingerprint.name == "t.fp"
    both = fps.match_body("nginx says: this page is blocked here")
    assert both is not None
    assert not both.false_positive
    assert both.fingerprint.name == "t.high"


def test_malformed_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        [
            "t.good,isp,,body,contains,good pattern,5,,test,,",  # line 2
            "t.short,isp,,body,contains",  # line 3
            "t.where,isp,,cookie,contains,x,5,,test,,",  # line 4
            "t.how,isp,,body,glob,x*,5,,test,,",  # line 5
            "t.regexp,isp,,body,regexp,(unclosed,5,,test,,",  # line 6
            't.multi,isp,,body,contains,"two\nlines",5,,test,,',  # lines 7-8
            "t.conf,isp,,body,contains,x,high,,test,,",  # line 9
            "t.empty,isp,,body,contains,,5,,test,,",  # line 10
        ],
    )
    fps = load([path])
    assert [fp.name for fp in fps.fingerprints] == ["t.good", "t.multi"]
    assert len(fps.problems) == 6
    lines = [p.split(": ", 1)[0] for p in fps.problems]
    assert lines == [f"{path}:{n}" for n in (3, 4, 5, 6, 9, 10)]
    reasons = " | ".join(fps.problems)
    for word in ("columns", "location_found", "pattern_type", "regexp", "confidence", "pattern"):
        assert word in reasons
    multi = fps.match_body("x two\nlines y")
    assert multi is not None
    assert multi.fingerprint.name == "t.multi"


def test_missing_file_raises_named_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FingerprintFileError, match=re.escape(str(missing))):
        load([missing])


def test_invalid_utf8_file_raises_named_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin.csv"
    bad.write_bytes(HEADER.encode() + b"t,isp,,body,contains,caf\xe9,5,,t,,\n")
    with pytest.raises(FingerprintFileError, match=re.escape(str(bad))):
        load([bad])


def test_body_bytes_decoded_with_replacement(tmp_path: Path) -> None:
    fps = load([write_csv(tmp_path, ["t.c,isp,,body,contains,blocked,5,,test,,"])])
    match = fps.match_body(b"\xff\xfe blocked \xc3")
    assert match is not None
    assert match.fingerprint.name == "t.c"


@given(pattern=st.text(min_size=1, max_size=8), text=st.text(max_size=200))
def test_contains_is_python_in(pattern: str, text: str) -> None:
    fp = Fingerprint("p", "isp", "body", "contains", pattern, 5)
    fps = FingerprintSet([fp])
    assert (fps.match_body(text) is not None) == (pattern in text)
    assert (fps.match_body(text + pattern) is not None) is True
