"""Censor lab: check, with plain clients, that each scenario's censor acts as configured.

One check per technique, keyed by the technique names of the scenario table; the rate
techniques' checks are in ``tests.lab.checks_rate``, the protocol techniques' in
``tests.lab.protocol_censors``, and more in ``tests.lab.checks_more``.
The self-tests assert every check passes; the demo prints what each one saw.
Checks look from the agent namespace, and from the net namespace where the
point is that the uncensored side (the control) sees something else. A dual-stack
row's check looks at IPv6 too, where the censor must act alike.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.lab import addresses as plan
from tests.lab.checks_rate import check_link_lossy, check_link_slow, check_throttle
from tests.lab.checks_rate import rate_kbps as rate_kbps  # benchmarks and e2e import it here
from tests.lab.lab import Lab
from tests.lab.protocol_censors import check_quic_sni_drop, check_vpn_drop
from tests.lab.scenarios import Scenario

BLOCKPAGE_PHRASE = "prohibited for viewership from within Pakistan"


class ClientError(RuntimeError):
    """A lab client crashed instead of reporting what it saw."""


@dataclass
class CheckResult:
    row: Scenario
    passed: bool
    observed: str
    details: dict[str, Any] = field(default_factory=dict)


def client(lab: Lab, role: str, op: str, **kwargs: Any) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.lab.clients", op, json.dumps(kwargs)]
    done = lab.run(role, argv, timeout=30)
    if done.returncode != 0:
        raise ClientError(f"lab client {op} failed in {role}: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _page(
    lab: Lab, role: str, row: Scenario, host: str | None = None, ip: str | None = None
) -> dict[str, Any]:
    """Fetch the row's URL from its IP (or ``ip``), verified against the lab CA for https."""
    name, ip = host or row.domain, ip or row.ip
    if row.scheme == "https":
        return client(
            lab, role, "http_get", ip=ip, host=name, tls_sni=name, ca_file=str(lab.ca_file)
        )
    return client(lab, role, "http_get", ip=ip, host=name)


def _ips(row: Scenario) -> list[str]:
    """The row's addresses: its IPv4 one, and its IPv6 one if the site is dual-stack."""
    return [ip for ip in (row.ip, row.ip6) if ip is not None]


def _result(row: Scenario, passed: bool, observed: str, **details: Any) -> CheckResult:
    return CheckResult(row, passed, observed, details)


def check_clean(lab: Lab, row: Scenario) -> CheckResult:
    resolved = client(lab, "agent", "dns_system", name=row.domain)
    resolved6 = client(lab, "agent", "dns_system", name=row.domain, qtype="AAAA")
    pages = [_page(lab, "agent", row, ip=ip) for ip in _ips(row)]
    passed = resolved["answers"] == [row.ip] and resolved6["answers"] == _ips(row)[1:]
    passed = passed and all(
        p.get("status") == 200 and row.domain in (p.get("title") or "") for p in pages
    )
    outcome = ", ".join(f"{p.get('status') or p['error']} {p.get('title')!r}" for p in pages)
    answers = resolved["answers"] + resolved6["answers"]
    observed = f"resolves to {answers}, {row.scheme} {outcome}"
    return _result(row, passed, observed, dns=resolved, page=pages[0])


def check_down(lab: Lab, row: Scenario) -> CheckResult:
    passed, seen = True, []
    for ip in _ips(row):
        agent = client(lab, "agent", "tcp", ip=ip, port=443)
        control = client(lab, "net", "tcp", ip=ip, port=443)
        passed = passed and agent["error"] == "ECONNREFUSED" == control["error"]
        seen.append(f"{ip}: agent {agent['error']}, control {control['error']}")
    return _result(row, passed, "; ".join(seen))


# What a lying resolver answers, by query type: (A, AAAA); None for NXDOMAIN.
Lie = tuple[str | None, str | None]


def _resolver_lie(lab: Lab, row: Scenario, lie: Lie) -> CheckResult:
    """The ISP resolver lies as told for A, and for AAAA if the site is dual-stack; the
    public resolver tells the truth."""
    passed, seen = True, []
    for qtype, truth, answer in (("A", row.ip, lie[0]), ("AAAA", row.ip6, lie[1])):
        if truth is None:
            continue
        system = client(lab, "agent", "dns_system", name=row.domain, qtype=qtype)
        public = client(
            lab, "agent", "dns_udp", server=plan.PUBLIC_RESOLVER, name=row.domain, qtype=qtype
        )
        public_answers = [a for reply in public["replies"] for a in reply["answers"]]
        told = system["rcode"] == "NXDOMAIN" if answer is None else system["answers"] == [answer]
        passed = passed and told and public_answers == [truth]
        seen.append(
            f"{qtype}: ISP resolver {system['rcode']} {system['answers']}, "
            f"public resolver {public_answers}"
        )
    return _result(row, passed, "; ".join(seen))


def check_dns_nxdomain(lab: Lab, row: Scenario) -> CheckResult:
    return _resolver_lie(lab, row, (None, None))


def check_dns_bogon(lab: Lab, row: Scenario) -> CheckResult:
    from tests.lab.censors import DEFAULT_BOGON

    bogon = row.params.get("answer", DEFAULT_BOGON)
    return _resolver_lie(lab, row, (bogon, plan.bogon_twin(bogon)))


def check_dns_redirect(lab: Lab, row: Scenario) -> CheckResult:
    blockpage6 = plan.twin(plan.BLOCKPAGE_SERVER)
    result = _resolver_lie(lab, row, (plan.BLOCKPAGE_SERVER, blockpage6))
    for ip in (plan.BLOCKPAGE_SERVER, blockpage6):
        page = client(lab, "agent", "http_get", ip=ip, host=row.domain)
        result.passed = result.passed and BLOCKPAGE_PHRASE in page.get("body_head", "")
        result.observed += f"; {ip} serves {page.get('title')!r}"
    return result


def check_dns_inject(lab: Lab, row: Scenario) -> CheckResult:
    from tests.lab.censors import injector_config

    config = injector_config(lab.table, row.hop)
    forged = config["answer"] if config else plan.INJECTED_ANSWER
    benign = client(
        lab, "agent", "dns_udp", server=plan.PUBLIC_RESOLVER, name=lab.table.benign_domain
    )
    passed, seen = len(benign["replies"]) == 1, []
    for qtype, real, fake in (("A", row.ip, forged), ("AAAA", row.ip6, plan.twin(forged))):
        if real is None:
            continue
        target = client(
            lab, "agent", "dns_udp", server=plan.PUBLIC_RESOLVER, name=row.domain, qtype=qtype
        )
        answers = [reply["answers"] for reply in target["replies"]]
        passed = passed and len(answers) >= 2 and answers[0] == [fake] and [real] in answers[1:]
        summary = ", ".join(
            f"{r['answers']} at {r['ms']}ms ttl={r['ip_ttl']}" for r in target["replies"]
        )
        seen.append(f"{qtype}: {len(answers)} replies: {summary}")
    observed = f"{'; '.join(seen)}; benign name: {len(benign['replies'])} reply"
    return _result(row, passed, observed)


def _ip_block(
    lab: Lab, row: Scenario, expected_error: str, blocked: list[str] | None = None
) -> CheckResult:
    """The agent's TCP to each of ``blocked`` (the row's addresses) fails, the control's
    works, and the agent's to the row's other address, if any, works."""
    port = 443 if row.scheme == "https" else 80
    blocked = _ips(row) if blocked is None else blocked
    passed, seen = True, []
    for ip in _ips(row):
        agent = client(lab, "agent", "tcp", ip=ip, port=port)
        control = client(lab, "net", "tcp", ip=ip, port=port)
        wanted = expected_error if ip in blocked else None
        passed = passed and agent["error"] == wanted and control["error"] is None
        seen.append(
            f"{ip}: agent TCP {agent['error'] or 'ok'}, control TCP {control['error'] or 'ok'}"
        )
    return _result(row, passed, "; ".join(seen))


def check_ip_drop(lab: Lab, row: Scenario) -> CheckResult:
    return _ip_block(lab, row, "timeout")


def check_ip_reset(lab: Lab, row: Scenario) -> CheckResult:
    return _ip_block(lab, row, "ECONNREFUSED")


def check_ip6_drop(lab: Lab, row: Scenario) -> CheckResult:
    return _ip_block(lab, row, "timeout", blocked=[ip for ip in _ips(row) if ":" in ip])


def _sni(lab: Lab, row: Scenario, expected_error: str) -> CheckResult:
    passed, seen = True, []
    for ip in _ips(row):
        real = client(lab, "agent", "tls", ip=ip, sni=row.domain)
        benign = client(lab, "agent", "tls", ip=ip, sni=lab.table.benign_domain)
        passed = passed and real["error"] == expected_error and benign["error"] is None
        benign_outcome = benign["error"] or "handshake ok"
        seen.append(f"{ip}: SNI {row.domain}: {real['error']}; benign SNI: {benign_outcome}")
    return _result(row, passed, "; ".join(seen))


def check_sni_reset(lab: Lab, row: Scenario) -> CheckResult:
    return _sni(lab, row, "ECONNRESET")


def check_sni_drop(lab: Lab, row: Scenario) -> CheckResult:
    return _sni(lab, row, "timeout")


def _host(lab: Lab, row: Scenario, expected_error: str) -> CheckResult:
    passed, seen = True, []
    for ip in _ips(row):
        real = client(lab, "agent", "http_get", ip=ip, host=row.domain)
        benign = client(lab, "agent", "http_get", ip=ip, host=lab.table.benign_domain)
        passed = passed and real["error"] == expected_error and benign.get("status") == 200
        benign_outcome = benign.get("status") or benign["error"]
        seen.append(f"{ip}: Host {row.domain}: {real['error']}; benign Host: {benign_outcome}")
    return _result(row, passed, "; ".join(seen))


def check_host_reset(lab: Lab, row: Scenario) -> CheckResult:
    return _host(lab, row, "ECONNRESET")


def check_host_drop(lab: Lab, row: Scenario) -> CheckResult:
    return _host(lab, row, "timeout")


def check_http_blockpage(lab: Lab, row: Scenario) -> CheckResult:
    passed, seen = True, []
    for ip in _ips(row):
        agent = client(lab, "agent", "http_get", ip=ip, host=row.domain)
        benign = client(lab, "agent", "http_get", ip=ip, host=lab.table.benign_domain)
        control = client(lab, "net", "http_get", ip=ip, host=row.domain)
        passed = (
            passed
            and BLOCKPAGE_PHRASE in agent.get("body_head", "")
            and row.domain in (control.get("title") or "")
            and benign.get("status") == 200
            and BLOCKPAGE_PHRASE not in benign.get("body_head", "")
        )
        seen.append(
            f"{ip}: agent gets {agent.get('title')!r} ({agent.get('length')} B); "
            f"control gets {control.get('title')!r}; benign Host relayed: {benign.get('status')}"
        )
    return _result(row, passed, "; ".join(seen))


def check_tls_intercept(lab: Lab, row: Scenario) -> CheckResult:
    ca = str(lab.ca_file)
    passed, seen = True, []
    for ip in _ips(row):
        verified = client(lab, "agent", "tls", ip=ip, sni=row.domain, ca_file=ca)
        shown = client(lab, "agent", "tls", ip=ip, sni=row.domain)
        control = client(lab, "net", "tls", ip=ip, sni=row.domain, ca_file=ca)
        passed = (
            passed
            and str(verified["error"]).startswith("cert_verify")
            and shown["error"] is None
            and "interceptor" in (shown["issuer"] or "")
            and control["error"] is None
        )
        seen.append(
            f"{ip}: agent {verified['error']} (issuer {shown.get('issuer')!r}); "
            f"control {control['error'] or 'verified'} (issuer {control.get('issuer')!r})"
        )
    return _result(row, passed, "; ".join(seen))


def check_redirect(lab: Lab, row: Scenario) -> CheckResult:
    """The site answers with the configured redirect, from both sides (no censor acts on it)."""
    agent, control = _page(lab, "agent", row), _page(lab, "net", row)
    status = int(row.params.get("status", "302"))
    seen = [(p.get("status"), p.get("location")) for p in (agent, control)]
    passed = seen == [(status, row.params["to"])] * 2
    return _result(row, passed, f"agent {seen[0]}, control {seen[1]}")


def check_shutdown(lab: Lab, row: Scenario) -> CheckResult:
    """Cut the uplink, see everything fail, restore it, see it work again."""
    benign = lab.table.benign
    lab.shutdown(True)
    try:
        cut_dns = client(lab, "agent", "dns_system", name=benign.domain)
        cut_tcp = client(lab, "agent", "tcp", ip=benign.ip, port=443)
    finally:
        lab.shutdown(False)
    back = client(lab, "agent", "tcp", ip=benign.ip, port=443)
    passed = (
        cut_dns["rcode"] == "timeout" and cut_tcp["error"] is not None and back["error"] is None
    )
    observed = (
        f"uplink cut: DNS {cut_dns['rcode']}, TCP {cut_tcp['error']}; "
        f"restored: TCP {back['error'] or 'ok'}"
    )
    return _result(row, passed, observed)


CHECKS: dict[str, Callable[[Lab, Scenario], CheckResult]] = {
    "clean": check_clean,
    "down": check_down,
    "dns-nxdomain": check_dns_nxdomain,
    "dns-bogon": check_dns_bogon,
    "dns-redirect": check_dns_redirect,
    "dns-inject": check_dns_inject,
    "ip-drop": check_ip_drop,
    "ip-reset": check_ip_reset,
    "ip6-drop": check_ip6_drop,
    "sni-reset": check_sni_reset,
    "sni-drop": check_sni_drop,
    "host-reset": check_host_reset,
    "host-drop": check_host_drop,
    "http-blockpage": check_http_blockpage,
    "tls-intercept": check_tls_intercept,
    "throttle": check_throttle,  # tests.lab.checks_rate
    "link-slow": check_link_slow,
    "link-lossy": check_link_lossy,
    "shutdown": check_shutdown,
    "redirect": check_redirect,
    "quic-sni-drop": check_quic_sni_drop,  # tests.lab.protocol_censors
    "vpn-drop": check_vpn_drop,
}

# Checks that change the lab while they run, so they must not overlap with others.
DISRUPTIVE = {"shutdown", "link-slow", "link-lossy", "vpn-drop"}


def check(lab: Lab, row: Scenario) -> CheckResult:
    try:
        return CHECKS[row.technique](lab, row)
    except ClientError as exc:
        return _result(row, False, str(exc))


# The checks of the sites broken for everyone, CAPTCHA, ghost names and FIN injection. Last,
# because they build on the helpers above (so import this module, never that one, first).
from tests.lab.checks_more import MORE_CHECKS  # noqa: E402

CHECKS.update(MORE_CHECKS)
