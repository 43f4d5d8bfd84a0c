"""Collector, test list: ``GET /api/v1/testlist`` through the real app, with the shared
Pakistani Citizen Lab list and small broken ones, and its configuration checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.api.paths import TESTLIST_PATH
from collector.config import ConfigError, Settings, make_settings
from tests.collector.app_client import running
from tests.shared_data import shared_file

HEADER = "url,category_code,category_description,date_added,source,notes\n"


def _settings(tmp_path: Path, testlist: Path | None) -> Settings:
    return Settings(
        db_url=f"sqlite:///{tmp_path}/c.db", testlist=None if testlist is None else str(testlist)
    )


@pytest.mark.asyncio
async def test_serves_the_list_as_json_and_csv_with_etags(tmp_path: Path) -> None:
    path = shared_file("testlist-pk.csv")
    async with running(_settings(tmp_path, path)) as client:
        response = await client.get(TESTLIST_PATH)
        assert response.status == 200
        body = await response.json()
        assert (body["count"], len(body["urls"]), body["source"]) == (670, 670, path.name)
        assert "https://discomaulvi.wordpress.com/" in body["urls"]
        etag = response.headers["ETag"]

        as_csv = await client.get(TESTLIST_PATH, params={"format": "csv"})
        assert as_csv.status == 200
        assert as_csv.content_type == "text/csv"
        assert await as_csv.read() == path.read_bytes()
        assert as_csv.headers["ETag"] != etag  # another representation, another tag

        for fmt, tag in (("json", etag), ("csv", as_csv.headers["ETag"])):
            for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
                again = await client.get(
                    TESTLIST_PATH, params={"format": fmt}, headers={"If-None-Match": sent}
                )
                assert again.status == 304, sent
                assert await again.read() == b""
                assert again.headers["ETag"] == tag
        stale = await client.get(TESTLIST_PATH, headers={"If-None-Match": '"old"'})
        assert stale.status == 200
        bad = await client.get(TESTLIST_PATH, params={"format": "xml"})
        assert bad.status == 400
        assert "error" in await bad.json()


@pytest.mark.asyncio
async def test_not_configured_is_a_json_404(tmp_path: Path) -> None:
    async with running(_settings(tmp_path, None)) as client:
        response = await client.get(TESTLIST_PATH)
        assert response.status == 404
        assert "no test list" in (await response.json())["error"]


@pytest.mark.asyncio
async def test_bad_rows_are_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        HEADER + "https://ok.example/,NEWS,,,,\nnot-a-url,NEWS,,,,\n,NEWS,,,,\n"
        "http://www.Other.example./x,NEWS,,,,\n"
    )
    caplog.set_level(logging.INFO, logger="netsonde.collector.testlist")
    async with running(_settings(tmp_path, path)) as client:
        for _ in range(3):
            body = await (await client.get(TESTLIST_PATH)).json()
            assert body["urls"] == ["https://ok.example/", "http://www.other.example/x"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 bad rows skipped" in warnings[0]
    assert "list.csv:3" in warnings[0]


@pytest.mark.asyncio
async def test_reloads_when_the_file_changes_and_keeps_the_last_good_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "https://one.example/,NEWS,,,,\n")
    async with running(_settings(tmp_path, path)) as client:
        first = await client.get(TESTLIST_PATH)
        assert (await first.json())["urls"] == ["https://one.example/"]

        path.write_text(HEADER + "https://one.example/,NEWS,,,,\nhttps://two.example/,NEWS,,,,\n")
        os.utime(path, ns=(1, 2_000_000_000))  # a distinct mtime, whatever the clock's grain
        second = await client.get(TESTLIST_PATH, headers={"If-None-Match": first.headers["ETag"]})
        assert second.status == 200
        assert (await second.json())["count"] == 2
        assert second.headers["ETag"] != first.headers["ETag"]

        path.write_text("no,url,column\n")  # broken: the last good list stays
        os.utime(path, ns=(1, 3_000_000_000))
        for _ in range(2):
            third = await client.get(TESTLIST_PATH)
            assert (await third.json())["count"] == 2
        path.unlink()
        assert (await (await client.get(TESTLIST_PATH)).json())["count"] == 2
    failures = [r for r in caplog.records if "reload failed" in r.getMessage()]
    assert len(failures) == 1


def test_configuration_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "nourl.csv").write_text("address,category\nhttps://x.example/,NEWS\n")
    (tmp_path / "allbad.csv").write_text(HEADER + "nope,NEWS,,,,\n")
    for name, reason in [
        ("missing.csv", "cannot read"),
        ("empty.csv", "empty test list"),
        ("nourl.csv", "no 'url' column"),
        ("allbad.csv", "is not a URL"),
        ("", "cannot read"),  # the directory itself
    ]:
        path = tmp_path / name
        with pytest.raises(ConfigError, match=r"^--testlist ") as info:
            make_settings(testlist=str(path))
        assert str(path) in str(info.value)
        assert reason in str(info.value)
    good = shared_file("testlist-pk.csv")
    assert make_settings(testlist=str(good)).testlist == str(good)
