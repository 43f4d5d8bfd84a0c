"""``netsonde-agent probe --collector``: with no ``--fingerprints`` it measures with the
collector's, else with the daemon's cached copy; given files win. A real collector app and a
page on loopback that one of the shared OONI fingerprints names, the probe a process of its
own; nothing leaves 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.daemon.fingerprints import FINGERPRINTS_CACHE
from agent.fingerprints import dump, load
from collector.config import Settings
from tests import REPO
from tests.collector.app_client import running
from tests.shared_data import shared_file

# The Pakistani blockpage's wording, which OONI's fingerprints know.
BLOCKPAGE = (
    "<html><body>This URL has been blocked under the instructions of the Competent Authority "
    "and is prohibited for viewership from within Pakistan.</body></html>"
)


def _ooni() -> tuple[Path, ...]:
    return (shared_file("fingerprints-http.csv"), shared_file("fingerprints-dns.csv"))


def _expected() -> str:
    match = load(_ooni()).match_body(BLOCKPAGE)
    assert match is not None
    assert not match.false_positive
    return f'"fingerprint":"{match.fingerprint.name}"'


@asynccontextmanager
async def blockpage() -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=BLOCKPAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        await server.close()


async def probe(collector: str, target: str, state: Path, *options: str) -> tuple[str, str]:
    """The probe's stdout (one --json line) and stderr."""
    argv = ["-m", "agent.cli", "probe", "--collector", collector, "--state-dir", str(state)]
    argv += ["--json", "--quiet", "--timeout", "2", *options, target]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


@pytest.mark.asyncio
async def test_probe_measures_with_the_collectors_fingerprints(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", fingerprints=tuple(map(str, _ooni())))
    other = tmp_path / "other.csv"
    other.write_text("name,scope,location_found,pattern_type,pattern\nx,isp,body,full,nothing\n")
    async with running(settings) as client, blockpage() as target:
        url = str(client.make_url("")).rstrip("/")
        out, err = await probe(url, target, tmp_path / "state")
        assert _expected() in out, err
        assert "fingerprints" not in err
        # Files given on the command line are all it measures with.
        out, err = await probe(url, target, tmp_path / "state", "--fingerprints", str(other))
        assert '"fingerprint":null' in out
        assert _expected() not in out


@pytest.mark.asyncio
async def test_an_unreachable_collector_leaves_the_daemons_cache(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refused at once
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        async with blockpage() as target:
            out, err = await probe(dead, target, state)
            assert _expected() not in out
            assert "no blockpage fingerprints from the collector (unreachable)" in err
            cache = {"etag": '"x"', "csv": dump(load(_ooni())), "fetched_ms": 1}
            (state / FINGERPRINTS_CACHE).write_text(json.dumps(cache))
            out, err = await probe(dead, target, state)
    assert _expected() in out
    assert f"using the fingerprints the daemon cached in {state}" in err
