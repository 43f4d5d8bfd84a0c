"""Collector, fingerprints: ``GET /api/v1/fingerprints`` through the real app, with the shared
OONI CSVs, none at all and broken ones, and its configuration checks."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest
from aiohttp import ClientSession

from agent.api.paths import FINGERPRINTS_PATH, MAX_FINGERPRINTS_BYTES
from agent.fingerprints import load, parse
from collector.cli import build_parser, settings_from_args
from collector.config import ConfigError, Settings, make_settings
from tests.collector.app_client import running
from tests.shared_data import shared_file

HEADER = "name,scope,location_found,pattern_type,pattern\n"


def _settings(tmp_path: Path, *paths: Path) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path}/c.db", fingerprints=tuple(map(str, paths)))


def _ooni() -> list[Path]:
    return [shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv")]


@pytest.mark.asyncio
async def test_serves_the_configured_csvs_with_a_strong_etag(tmp_path: Path) -> None:
    async with running(_settings(tmp_path, *_ooni())) as client:
        response = await client.get(FINGERPRINTS_PATH, headers={"Accept-Encoding": "identity"})
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert "Content-Encoding" not in response.headers
        etag = response.headers["ETag"]
        assert etag.startswith('"')
        assert not etag.startswith("W/")
        served = parse(await response.text(), "collector")
        assert served.fingerprints == load(_ooni()).fingerprints
        assert response.headers["Cache-Control"] == "no-cache"

        for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = await client.get(
                FINGERPRINTS_PATH,
                headers={"If-None-Match": sent, "Accept-Encoding": "identity"},
            )
            assert again.status == 304, sent
            assert await again.read() == b""
            assert again.headers["ETag"] == etag
        # Stale, or not an entity tag at all: the whole set again, never an error.
        for sent in ('"old"', "old", '"unterminated', "W/", ", ,", '"a" "b"', "*x"):
            stale = await client.get(
                FINGERPRINTS_PATH, headers={"If-None-Match": sent, "Accept-Encoding": "identity"}
            )
            assert stale.status == 200, sent
            assert stale.headers["ETag"] == etag


@pytest.mark.asyncio
async def test_gzip_is_another_representation_with_its_own_tag(tmp_path: Path) -> None:
    async with running(_settings(tmp_path, *_ooni())) as client:
        plain = await client.get(FINGERPRINTS_PATH, headers={"Accept-Encoding": "identity"})
        body = await plain.read()
        url = client.make_url(FINGERPRINTS_PATH)
        async with (
            ClientSession(auto_decompress=False) as raw,
            raw.get(url, headers={"Accept-Encoding": "br, gzip;q=0.5"}) as zipped,
        ):
            assert zipped.headers["Content-Encoding"] == "gzip"
            assert zipped.headers["Vary"] == "Accept-Encoding"
            wire = await zipped.read()
            assert gzip.decompress(wire) == body
            assert len(wire) < len(body) / 2
            tag = zipped.headers["ETag"]
        assert tag != plain.headers["ETag"]
        again = await client.get(
            FINGERPRINTS_PATH, headers={"If-None-Match": tag, "Accept-Encoding": "gzip"}
        )
        assert again.status == 304
        refused = await client.get(FINGERPRINTS_PATH, headers={"Accept-Encoding": "gzip;q=0"})
        assert "Content-Encoding" not in refused.headers
        assert refused.headers["ETag"] == plain.headers["ETag"]


@pytest.mark.asyncio
async def test_none_configured_is_an_empty_set_not_an_error(tmp_path: Path) -> None:
    """An agent asks every collector by default; one without fingerprints has none to give,
    which is no failure for the agent to report."""
    async with running(_settings(tmp_path)) as client:
        response = await client.get(FINGERPRINTS_PATH)
        assert response.status == 200
        assert len(parse(await response.text(), "collector")) == 0
        etag = response.headers["ETag"]
        again = await client.get(FINGERPRINTS_PATH, headers={"If-None-Match": etag})
        assert again.status == 304


@pytest.mark.asyncio
async def test_bad_rows_are_skipped_logged_and_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fp.csv"
    path.write_text(HEADER + "good,isp,body,contains,blocked here\nbad,isp,body,glob,*\n")
    caplog.set_level(logging.INFO, logger="netsonde.collector.fingerprints")
    async with running(_settings(tmp_path, path)) as client:
        served = parse(await (await client.get(FINGERPRINTS_PATH)).text(), "collector")
    assert [fp.name for fp in served.fingerprints] == ["good"]
    assert served.problems == ()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{path}:3: unknown pattern_type 'glob'" in warnings[0]


def test_configuration_refuses_unreadable_and_oversized_sets(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    with pytest.raises(ConfigError, match=r"--fingerprints .*missing\.csv"):
        make_settings(db=db, fingerprints=[str(tmp_path / "missing.csv")])
    huge = tmp_path / "huge.csv"
    row = "x{},isp,body,contains,{}\n"
    rows = "".join(row.format(i, "p" * 1000) for i in range(MAX_FINGERPRINTS_BYTES // 1000))
    huge.write_text(HEADER + rows)
    with pytest.raises(ConfigError, match=r"--fingerprints .* over the \d+ an agent accepts"):
        make_settings(db=db, fingerprints=[str(huge)])
    paths = [str(p) for p in _ooni()]
    settings = make_settings(db=db, fingerprints=[*paths, paths[0]])
    assert settings.fingerprints == tuple(paths)  # each file once


def test_serve_takes_fingerprints_repeatedly(tmp_path: Path) -> None:
    paths = [str(p) for p in _ooni()]
    argv = ["serve", "--db", f"sqlite:///{tmp_path}/c.db"]
    twice = [*argv, "--fingerprints", paths[0], "--fingerprints", paths[1]]
    args = build_parser().parse_args(twice)
    assert settings_from_args(args).fingerprints == tuple(paths)
    assert settings_from_args(build_parser().parse_args(argv)).fingerprints == ()
