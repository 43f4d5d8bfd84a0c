"""Dashboard pages on the real app: what each shows, the headers they carry, and that the
public ones never name an agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.dashboard.render import CSP, CSS_PATH
from collector.evidence.key import public_key_text
from collector.storage.blocking import NOT_BLOCKING
from collector.web.keys import COLLECTOR_KEY
from tests.collector.app_client import operator
from tests.collector.dashboard.site import foreign_links, site

PUBLIC = (
    "/",
    "/?days=1",
    "/matrix",
    "/matrix?show=all&days=30",
    "/timeline?domain=a.example",
    "/timeline?asn=64500&cc=PK&days=90",
    "/timeline?domain=a.example&asn=64501",
    "/outages",
    "/login",
)


def cells(body: str) -> dict[str, list[str]]:
    """The matrix as {domain: [each cell's class and text]}."""
    out: dict[str, list[str]] = {}
    for row in re.findall(r"<tr><th class=\"domain\" scope=\"row\">(.*?)</tr>", body, re.S):
        domain = re.search(r">([^<]+)</a></th>", row)
        assert domain is not None
        found = re.findall(r'<td class="([^"]*)"[^>]*>(?:<a [^>]*>)?([^<]*)', row)
        out[domain[1]] = [f"{cls}: {text.strip()}" for cls, text in found]
    return out


@pytest.mark.asyncio
async def test_public_pages_are_strict_small_and_name_no_agent(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        for path in PUBLIC:
            response = await s.client.get(path)
            body = await response.text()
            assert response.status == 200, (path, body)
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.content_type == "text/html"
            assert "<script" not in body
            assert " style=" not in body
            assert foreign_links(body) == [], path
            assert s.agent_id not in body, path
            assert CSS_PATH in body
            assert len(body) < 40_000, path
        gzipped = await s.client.get("/", headers={"Accept-Encoding": "gzip"})
        assert gzipped.headers["Content-Encoding"] == "gzip"
        css = await s.client.get(CSS_PATH)
        assert css.status == 200
        assert "immutable" in css.headers["Cache-Control"]
        assert ".v-tls-reset" in await css.text()
        assert (await s.client.get("/static/other.css")).status == 404


@pytest.mark.asyncio
async def test_the_matrix_pivots_domains_by_network(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        body = await (await s.client.get("/matrix")).text()
        assert "AS64500 PK" in body
        assert "AS64501 IR" in body
        ours = {"a.example", "b.example", "c.example", "d.example"}
        matrix = {d: c for d, c in cells(body).items() if d in ours}
        # Blocked somewhere: a.example, c.example, d.example; b.example is fine everywhere.
        assert set(matrix) == {"a.example", "c.example", "d.example"}
        # A block in under half the measurements is only marked.
        assert matrix["d.example"][-1] == "v v-dns-timeout minor: ok 3/4, dns.timeout 1"
        # Columns: the uploads' unknown network, AS64500 PK, AS64501 IR.
        assert matrix["a.example"] == ["none: -", "v v-tls-reset: tls.reset 3/4", "v v-ok: ok 2/2"]
        assert matrix["c.example"] == ["none: -", "v v-dns-nxdomain: dns.nxdomain 2/2", "none: -"]
        everything = cells(await (await s.client.get("/matrix?show=all")).text())
        assert everything["b.example"][-2:] == ["v v-ok: ok 2/2", "v v-ok: ok 1/1"]
        one_network = cells(await (await s.client.get("/matrix?asn=64501&show=all")).text())
        assert one_network == {
            "a.example": ["v v-ok: ok 2/2"],
            "b.example": ["v v-ok: ok 1/1"],
            "d.example": ["v v-dns-timeout minor: ok 3/4, dns.timeout 1"],
        }


@pytest.mark.asyncio
async def test_the_overview_sums_the_window_and_shows_the_collector_key(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        body = await (await s.client.get("/")).text()
        stats = {
            label.strip(): value
            for value, label in re.findall(r"<li><b>([^<]+)</b>([^<]+)</li>", body)
        }
        assert stats["measurements"] == "20"  # 5 uploaded, 15 in the two networks
        blocked = [v for v in s.uploaded_verdicts if v not in NOT_BLOCKING]
        assert stats["show blocking"] == str(6 + len(blocked))
        assert stats["agents online"] == "1 of 1"
        pairs = "domain \N{MULTIPLICATION SIGN} network pairs blocked"
        assert stats[pairs] == str(3 + len(set(blocked)))
        assert public_key_text(s.client.app[COLLECTOR_KEY]) in body
        assert body.count("<svg") == 4  # timeline, techniques, domains, outages
        assert f"tls.reset ({3 + s.uploaded_verdicts.count('tls.reset')})" in body
        # a.example's 3 tls.reset of 4 on AS64500 cross the default thresholds.
        incident = re.search(r'<li class="incident blocking">(.*?)</li>', body, re.S)
        assert incident is not None
        assert "a.example blocked (tls.reset) on AS64500 PK" in incident[1]
        assert "3 of 4 measurements show the block, 1 agent" in incident[1]
        assert 'href="/report?domain=a.example&amp;asn=64500&amp;since=' in incident[1]


@pytest.mark.asyncio
async def test_a_measurement_is_explained_and_only_the_operator_sees_its_agent(
    tmp_path: Path,
) -> None:
    async with site(tmp_path) as s:
        path = f"/measurement/{s.uploaded[0]}"
        public = await (await s.client.get(path)).text()
        assert '<p class="explain">' in public
        explained = re.search(r'<p class="explain">([^<]+)</p>', public)
        assert explained is not None
        assert len(explained[1]) > 20
        assert s.agent_id not in public
        private = await s.client.get(path, headers=operator(s.client))
        assert s.agent_id in await private.text()
        assert private.headers["Cache-Control"] == "no-store"
        missing = await s.client.get("/measurement/01890000-0000-7000-8000-000000000000")
        assert missing.status == 404
        assert (await s.client.get("/measurement/not-a-uuid")).status == 400


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    ["/?days=3", "/?x=1", "/?days=7&days=7", "/matrix?page=two", "/matrix?show=some",
     "/timeline", "/timeline?domain=a%20b", "/outages?asn=big", "/matrix?cc=PAK"],
)  # fmt: skip
async def test_bad_parameters_are_a_400_page(tmp_path: Path, path: str) -> None:
    async with site(tmp_path) as s:
        response = await s.client.get(path)
        assert response.status == 400
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CSP
        assert "400" in await response.text()
