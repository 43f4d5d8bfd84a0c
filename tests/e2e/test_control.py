"""The control end to end: the real collector in the net namespace, the agent's client behind
the censors.

The collector runs as its own process (``python -m collector.cli serve``) at the lab's
collector address; requests leave from the agent namespace through the ISP and border
hops, exactly as a deployed agent's would, signed with the lab probe's enrolled key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.lab.collector import COLLECTOR_URL, LabCollector
from tests.lab.engine import probe_state_dir
from tests.lab.lab import Lab
from tests.lab.scenarios import Scenario

pytestmark = pytest.mark.lab

NOWHERE_URL = "http://198.51.100.11:8080"  # nothing listens or routes there
STOP_TIMEOUT = 5.0


def runner(lab: Lab, role: str, op: str, *, signed: bool = True, **kwargs: Any) -> dict[str, Any]:
    """``op`` of control_runner in ``role``'s namespace, as the enrolled probe if ``signed``."""
    if signed and op != "health":
        kwargs["state_dir"] = str(probe_state_dir(lab))
    argv = [sys.executable, "-m", "tests.e2e.control_runner", op, json.dumps(kwargs)]
    done = lab.run(role, argv, timeout=60)
    assert done.returncode == 0, f"control_runner {op} crashed: {done.stderr.strip()}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def row(lab: Lab, technique: str) -> Scenario:
    rows = lab.table.by_technique(technique)
    if not rows:
        pytest.skip(f"the scenario table has no {technique} row")
    return rows[0]


def fetch(lab: Lab, url: str, **kwargs: Any) -> dict[str, Any]:
    return runner(lab, "agent", "fetch", collector=COLLECTOR_URL, url=url, **kwargs)


def endpoint(vantage: dict[str, Any], ip: str) -> dict[str, Any]:
    by_ip: dict[str, dict[str, Any]] = {e["ip"]: e for e in vantage["endpoints"]}
    assert ip in by_ip, f"no endpoint {ip} in {list(by_ip)}"
    return by_ip[ip]


def test_agent_reaches_collector(lab: Lab, collector: LabCollector) -> None:
    assert runner(lab, "agent", "health", collector=COLLECTOR_URL) == {"reachable": True}


def test_control_of_sni_filtered_site_sees_it_working(lab: Lab, collector: LabCollector) -> None:
    """x.com is reset by SNI at the border, for the agent only: the control sees the site."""
    site = row(lab, "sni-reset")
    body = {"url": site.url, "addresses": [site.ip]}
    cold = runner(lab, "agent", "post", collector=COLLECTOR_URL, body=body)
    assert (cold["status"], cold["content_type"]) == (200, "application/msgpack")
    assert cold["cache"] == "miss"
    warm = runner(lab, "agent", "post", collector=COLLECTOR_URL, body=body)
    assert (warm["status"], warm["cache"], warm["length"]) == (200, "hit", cold["length"])
    print(f"\ncontrol of {site.domain}: cold {cold['ms']} ms, cached {warm['ms']} ms")

    seen = fetch(lab, site.url, addresses=[site.ip])  # same key: a hit, decoded
    assert seen["failure"] is None
    vantage = seen["vantage"]
    assert vantage["dns"]["system"]["failure"] is None
    assert vantage["dns"]["system"]["addresses"] == [site.ip]
    assert [r["addresses"] for r in vantage["dns"]["public"][0]["replies"]] == [[site.ip]]
    point = endpoint(vantage, site.ip)
    assert point["tcp"]["failure"] is None
    assert point["tls"]["failure"] is None
    assert point["tls"]["validated"] is True, point["tls"]
    assert point["tls"]["sni"] == site.domain
    assert point["http"]["status"] == 200
    assert site.domain in (point["http"]["title"] or "")


def test_control_of_down_site_is_refused_too(lab: Lab, collector: LabCollector) -> None:
    site = row(lab, "down")
    seen = fetch(lab, site.url)
    assert seen["failure"] is None
    vantage = seen["vantage"]
    assert vantage["dns"]["system"]["addresses"] == [site.ip]
    point = endpoint(vantage, site.ip)
    assert point["tcp"]["failure"] == "connection_refused"
    assert point["tls"] is None
    assert point["http"] is None


def test_control_resolves_what_the_isp_denies(lab: Lab, collector: LabCollector) -> None:
    site = row(lab, "dns-nxdomain")
    seen = fetch(lab, site.url)
    assert seen["failure"] is None
    vantage = seen["vantage"]
    assert vantage["dns"]["system"]["failure"] is None
    assert vantage["dns"]["system"]["addresses"] == [site.ip]
    point = endpoint(vantage, site.ip)
    assert point["tls"]["validated"] is True
    assert point["http"]["status"] == 200


def test_private_addresses_from_the_agent_are_not_probed(lab: Lab, collector: LabCollector) -> None:
    """An ISP's bogon answer reaches the collector as an address; it must not probe its own LAN."""
    site = row(lab, "dns-bogon")
    seen = fetch(lab, site.url, addresses=["10.10.34.34", "127.0.0.1", "fd00::a0a:2222", "::1"])
    assert seen["failure"] is None
    # Only the site's own addresses, of both families, from the control's DNS answer.
    assert [e["ip"] for e in seen["vantage"]["endpoints"]] == [site.ip, site.ip6]


def test_only_an_enrolled_agent_is_served(lab: Lab, collector: LabCollector) -> None:
    body = {"url": row(lab, "clean").url}
    unsigned = runner(lab, "agent", "post", signed=False, collector=COLLECTOR_URL, body=body)
    assert (unsigned["status"], unsigned["json"]["reason"]) == (401, "auth")
    assert runner(lab, "agent", "post", collector=COLLECTOR_URL, body=body)["status"] == 200


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/metrics", "http://[::ffff:127.0.0.1]:8080/", "http://10.0.0.5/"]
)
def test_the_collectors_own_host_and_lan_are_refused(
    lab: Lab, collector: LabCollector, url: str
) -> None:
    seen = runner(lab, "agent", "post", collector=COLLECTOR_URL, body={"url": url})
    assert seen["status"] == 400
    assert "may not be measured" in seen["json"]["error"]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"url": "gopher://x"}, "only http and https"),
        ({"url": "x.com", "addresses": ["not-an-ip"]}, "not an IP address"),
        ({"url": "x.com", "addresses": ["192.0.2.1"] * 17}, "at most 16"),
        ({"addresses": []}, "'url' must be a string"),
        ("{not json", "must be JSON"),
    ],
)
def test_bad_requests_get_400_with_a_reason(
    lab: Lab, collector: LabCollector, request_body: Any, message: str
) -> None:
    if isinstance(request_body, str):
        seen = runner(lab, "agent", "post", collector=COLLECTOR_URL, raw=request_body)
    else:
        seen = runner(lab, "agent", "post", collector=COLLECTOR_URL, body=request_body)
    assert seen["status"] == 400
    assert message in seen["json"]["error"]


def test_oversized_request_is_refused(lab: Lab, collector: LabCollector) -> None:
    seen = runner(lab, "agent", "post", collector=COLLECTOR_URL, raw="x" * (65 * 1024))
    assert seen["status"] == 413
    assert "error" in seen["json"]


def test_unreachable_collector_is_a_failure_string(lab: Lab, collector: LabCollector) -> None:
    start = time.monotonic()
    seen = runner(lab, "agent", "fetch", collector=NOWHERE_URL, url="x.com", timeout=1.5)
    assert seen["failure"] in ("control_unreachable", "control_timeout")
    assert seen["ms"] < 2000
    assert time.monotonic() - start < 10
    assert runner(lab, "agent", "health", collector=NOWHERE_URL, timeout=1.0) == {
        "reachable": False
    }


def test_sigterm_stops_the_collector_cleanly(lab: Lab, collector: LabCollector) -> None:
    assert collector.process is not None
    collector.process.send_signal(signal.SIGTERM)
    try:
        code = collector.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the collector ignored SIGTERM for {STOP_TIMEOUT}s")
    assert code == 0, collector.log_text()
    assert "stopping" in collector.log_text()
