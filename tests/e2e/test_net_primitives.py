"""Agent layer-1 primitives against the censor lab, run inside the agent namespace."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.lab import addresses as plan
from tests.lab.lab import Lab
from tests.lab.scenarios import Scenario

pytestmark = pytest.mark.lab

TIMEOUT = 1.5


def net(lab: Lab, op: str, **kwargs: Any) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.e2e.net_runner", op, json.dumps(kwargs)]
    done = lab.run("agent", argv, timeout=30)
    assert done.returncode == 0, f"net_runner {op} crashed: {done.stderr.strip()}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def row(lab: Lab, technique: str, scheme: str | None = None) -> Scenario:
    rows = [r for r in lab.table.by_technique(technique) if scheme in (None, r.scheme)]
    if not rows:
        pytest.skip(f"the scenario table has no {technique} row")
    return rows[0]


def test_udp_exchange_sees_injected_and_real_reply(lab: Lab) -> None:
    target = row(lab, "dns-inject")
    seen = net(lab, "dns_udp", server=plan.PUBLIC_RESOLVER, name=target.domain, timeout=TIMEOUT)
    replies = seen["dns"]["replies"]
    assert seen["dns"]["failure"] is None
    assert len(replies) >= 2, replies
    assert len({tuple(r["addresses"]) for r in replies}) >= 2, replies
    assert len({r["ip_ttl"] for r in replies}) >= 2, replies
    assert [target.ip] in [r["addresses"] for r in replies]


def test_udp_exchange_clean_name_has_one_reply(lab: Lab) -> None:
    clean = lab.table.benign
    seen = net(lab, "dns_udp", server=plan.PUBLIC_RESOLVER, name=clean.domain, timeout=TIMEOUT)
    replies = seen["dns"]["replies"]
    assert len(replies) == 1, replies
    assert replies[0]["addresses"] == [clean.ip]
    assert replies[0]["source"] == plan.PUBLIC_RESOLVER
    assert replies[0]["rcode"] == "NOERROR"
    assert replies[0]["ip_ttl"] is not None


def test_system_resolve_nxdomain(lab: Lab) -> None:
    seen = net(lab, "system_resolve", name=row(lab, "dns-nxdomain").domain, timeout=TIMEOUT)
    assert seen["dns"]["failure"] == "dns_nxdomain_error"
    assert seen["dns"]["rcode"] == "NXDOMAIN"
    assert seen["dns"]["server"] is not None


def test_system_resolve_clean(lab: Lab) -> None:
    clean = row(lab, "clean")
    seen = net(lab, "system_resolve", name=clean.domain, timeout=TIMEOUT)
    assert seen["dns"]["failure"] is None
    assert seen["dns"]["addresses"] == [clean.ip]


def test_tcp_connect_ok_and_dropped_and_reset(lab: Lab) -> None:
    ok = net(lab, "tcp", ip=lab.table.benign.ip, port=443, timeout=TIMEOUT)["tcp"]
    dropped = net(lab, "tcp", ip=row(lab, "ip-drop").ip, port=443, timeout=TIMEOUT)["tcp"]
    reset = net(lab, "tcp", ip=row(lab, "ip-reset").ip, port=443, timeout=TIMEOUT)["tcp"]
    assert ok["failure"] is None
    assert dropped["failure"] == "generic_timeout_error"
    assert dropped["ms"] >= TIMEOUT * 1000 * 0.9
    assert reset["failure"] == "connection_refused"


def test_ipv6_aaaa_and_tcp_and_the_route_check(lab: Lab) -> None:
    """The lab is dual-stack: AAAA answers, IPv6 connects, and the censor that forgets IPv4
    drops only IPv6; the route check sees the agent's IPv6 route."""
    clean, only6 = lab.table.benign, row(lab, "ip6-drop")
    aaaa = net(lab, "system_resolve", name=clean.domain, qtype="AAAA", timeout=TIMEOUT)["dns"]
    assert (aaaa["qtype"], aaaa["addresses"]) == ("AAAA", [clean.ip6])
    assert net(lab, "tcp", ip=clean.ip6, port=443, timeout=TIMEOUT)["tcp"]["failure"] is None
    dropped = net(lab, "tcp", ip=only6.ip6, port=443, timeout=TIMEOUT)["tcp"]
    assert dropped["failure"] == "generic_timeout_error"
    assert net(lab, "tcp", ip=only6.ip, port=443, timeout=TIMEOUT)["tcp"]["failure"] is None
    assert net(lab, "route", ip=clean.ip6)["route"] is True


def test_tls_sni_reset_and_benign_sni_swap(lab: Lab) -> None:
    blocked = row(lab, "sni-reset")
    ca = str(lab.ca_file)
    real = net(lab, "tls", ip=blocked.ip, sni=blocked.domain, ca_file=ca, timeout=TIMEOUT)
    assert real["tcp"]["failure"] is None
    assert real["tls"]["failure"] == "connection_reset"
    swapped = net(lab, "tls", ip=blocked.ip, sni=lab.table.benign_domain, ca_file=ca)
    shaken = swapped["tls"]
    assert shaken["failure"] is None
    assert shaken["version"]
    assert shaken["cipher"]
    assert shaken["leaf_sha256"]
    # The site's certificate names the site, not the benign name.
    assert shaken["validated"] is False
    assert shaken["validation_failure"] == "ssl_invalid_hostname"


def test_tls_clean_validates(lab: Lab) -> None:
    clean = lab.table.benign
    shaken = net(lab, "tls", ip=clean.ip, sni=clean.domain, ca_file=str(lab.ca_file))["tls"]
    assert shaken["failure"] is None
    assert shaken["validated"] is True, shaken
    assert shaken["issuer"] == "netsonde censor lab"
    without_ca = net(lab, "tls", ip=clean.ip, sni=clean.domain)["tls"]
    assert without_ca["validation_failure"] == "ssl_unknown_authority"
    assert without_ca["leaf_sha256"] == shaken["leaf_sha256"]


def test_tls_intercept_completes_but_fails_validation(lab: Lab) -> None:
    target = row(lab, "tls-intercept")
    shaken = net(lab, "tls", ip=target.ip, sni=target.domain, ca_file=str(lab.ca_file))["tls"]
    assert shaken["failure"] is None
    assert shaken["version"]
    assert shaken["cipher"]
    assert shaken["leaf_sha256"]
    assert shaken["validated"] is False
    assert shaken["validation_failure"] == "ssl_unknown_authority"
    assert "interceptor" in (shaken["issuer"] or "").lower()


def test_http_host_reset(lab: Lab) -> None:
    target = row(lab, "host-reset")
    seen = net(lab, "http", ip=target.ip, host=target.domain, timeout=TIMEOUT)
    assert seen["tcp"]["failure"] is None
    assert seen["http"]["failure"] == "connection_reset"
    assert seen["http"]["status"] is None
    swapped = net(lab, "http", ip=target.ip, host=lab.table.benign_domain, timeout=TIMEOUT)
    assert swapped["http"]["failure"] is None


def test_http_blockpage(lab: Lab) -> None:
    target = row(lab, "http-blockpage")
    fetched = net(lab, "http", ip=target.ip, host=target.domain, timeout=TIMEOUT)["http"]
    assert fetched["failure"] is None
    assert fetched["status"] == 200
    assert fetched["body_length"] > 0
    assert fetched["body_sha256"]
    real = net(lab, "http", ip=target.ip, host=lab.table.benign_domain, timeout=TIMEOUT)["http"]
    assert real["status"] == 200
    assert fetched["body_sha256"] != real["body_sha256"]
    assert fetched["title"] == "Blocked"
    assert real["title"] != "Blocked"


def test_http_clean_https(lab: Lab) -> None:
    clean = row(lab, "clean", scheme="https")
    seen = net(
        lab, "http", ip=clean.ip, host=clean.domain, sni=clean.domain, ca_file=str(lab.ca_file)
    )
    assert seen["tls"]["validated"] is True
    fetched = seen["http"]
    assert fetched["failure"] is None
    assert fetched["status"] == 200
    assert clean.domain in (fetched["title"] or "")
    assert fetched["body_truncated"] is False
    assert fetched["body_length"] == fetched["content_length"] or fetched["content_length"] is None


def test_http_body_cap(lab: Lab) -> None:
    clean = row(lab, "clean", scheme="http")
    whole = net(lab, "http", ip=clean.ip, host=clean.domain, path="/bytes/5000", max_body=8192)
    capped = net(lab, "http", ip=clean.ip, host=clean.domain, path="/bytes/5000", max_body=4096)
    assert whole["http"]["body_length"] == 5000
    assert whole["http"]["body_truncated"] is False
    assert capped["http"]["body_length"] == 4096
    assert capped["http"]["body_truncated"] is True
    assert capped["http"]["content_length"] == 5000
