"""Unit tests for agent.targets: command-line targets and Citizen Lab test lists (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cli.targets import parse_targets
from agent.wire.testlist import read_test_list
from tests.shared_data import shared_file

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def write(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def urls(arguments: list[str]) -> list[str]:
    return [t.url for t in parse_targets(arguments).targets]


def test_url_and_bare_domain() -> None:
    parsed = parse_targets(["http://Example.org/a?b=1", "x.com", "https://y.org:8443/"])
    assert [t.url for t in parsed.targets] == [
        "http://example.org/a?b=1",
        "https://x.com/",
        "https://y.org:8443/",
    ]
    assert parsed.targets[1].scheme == "https"
    assert parsed.targets[1].port == 443
    assert parsed.problems == []


def test_bad_target_is_reported_and_the_rest_kept() -> None:
    parsed = parse_targets(["foo bar", "ftp://x.com/", "x.com", "", "@", "http://a<b.org/"])
    assert [t.url for t in parsed.targets] == ["https://x.com/"]
    assert len(parsed.problems) == 5
    assert "'foo bar'" in parsed.problems[0]
    assert "only http and https" in parsed.problems[1]
    assert "@" in parsed.problems[3]
    assert "no valid host name" in parsed.problems[4]


def test_dedupe_keeps_first_occurrence_order(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "https://b.org/,NEWS,,,,\nhttps://a.org/,NEWS,,,,\n")
    parsed = parse_targets(["a.org", f"@{path}", "https://A.org/", "c.org", "b.org"])
    assert [t.url for t in parsed.targets] == ["https://a.org/", "https://b.org/", "https://c.org/"]
    assert parsed.duplicates == 3


def test_test_list_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "https://one.org/,NEWS,News Media,2020-01-01,citizenlab,\n"
        + 'http://two.org/x,HUMR,"Human Rights, Issues",2020-01-01,citizenlab,"two\nlines"\n'
        + "https://three.org/,NEWS,,,,\n",
    )
    parsed = parse_targets([f"@{path}"])
    assert [t.url for t in parsed.targets] == [
        "https://one.org/",
        "http://two.org/x",
        "https://three.org/",
    ]
    assert parsed.problems == []


def test_malformed_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "https://good.org/,NEWS,,,,\n"  # line 2
        + ",NEWS,,,,\n"  # 3: empty url
        + "ftp://files.org/,NEWS,,,,\n"  # 4: scheme
        + "https://bad host/,NEWS,,,,\n"  # 5: unparsable
        + '"quoted\nacross lines",NEWS,,,,\n'  # 6-7: no scheme
        + "http://[::1/,NEWS,,,,\n"  # 8: unparsable
        + "\n"  # 9: blank, silently ignored
        + "https://also-good.org/\n",  # 10: short row, url present
    )
    targets, problems = read_test_list(path)
    assert [t.url for t in targets] == ["https://good.org/", "https://also-good.org/"]
    lines = [p.split(": ", 1)[0] for p in problems]
    assert lines == [f"{path}:{n}" for n in (3, 4, 5, 6, 8)]
    assert "missing url" in problems[0]
    assert "only http and https" in problems[1]
    assert "no valid host name" in problems[2]
    assert "no scheme" in problems[3]


def test_missing_url_column(tmp_path: Path) -> None:
    path = write(tmp_path, "address,category_code\nhttps://x.org/,NEWS\n")
    targets, problems = read_test_list(path)
    assert targets == []
    assert problems == [
        f"{path}:1: no 'url' column in the header "
        "(a Citizen Lab test list starts with url,category_code,...)"
    ]


def test_url_column_found_anywhere_and_bom_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfcategory_code,URL\r\nNEWS,https://x.org/\r\n")
    targets, problems = read_test_list(path)
    assert [t.url for t in targets] == ["https://x.org/"]
    assert problems == []


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert read_test_list(path) == ([], [f"{path}: empty test list"])


def test_unreadable_file_is_reported_and_other_targets_still_run(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    parsed = parse_targets([f"@{missing}", "x.com", f"@{tmp_path}"])
    assert [t.url for t in parsed.targets] == ["https://x.com/"]
    assert parsed.problems[0] == f"{missing}: cannot read test list: No such file or directory"
    assert parsed.problems[1].startswith(f"{tmp_path}: cannot read test list: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER)
    path.chmod(0)
    assert read_test_list(path) == ([], [f"{path}: cannot read test list: Permission denied"])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"https://caf\xe9.org/,NEWS,,,,\n")
    targets, problems = read_test_list(path)
    assert targets == []
    assert problems[0].startswith(f"{path}: cannot read test list: ")


def test_csv_framing_error_keeps_earlier_rows(tmp_path: Path) -> None:
    huge = "x" * 200_000  # beyond the csv module's field size limit
    path = write(tmp_path, HEADER + f"https://x.org/,NEWS,,,,\nhttps://y.org/,{huge},,,,\n")
    targets, problems = read_test_list(path)
    assert [t.url for t in targets] == ["https://x.org/"]
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:3: unreadable CSV")


def test_real_pakistan_test_list() -> None:
    path = shared_file("testlist-pk.csv")
    targets, problems = read_test_list(path)
    # All 670 rows parse. Two of them, http://www.kproxy.com/ and http://www.kproxy.com./ (lines
    # 43 and 44), name the same URL once normalised, so a probe run measures 669.
    assert problems == []
    assert len(targets) == 670
    assert all(t.scheme in ("http", "https") and t.host for t in targets)
    parsed = parse_targets([f"@{path}"])
    assert len(parsed.targets) == 669
    assert parsed.duplicates == 1
    assert parsed.targets[0].url == "https://discomaulvi.wordpress.com/"
    assert any(t.url == "http://www.vtunnel.info/" for t in parsed.targets)
