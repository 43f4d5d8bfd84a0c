"""Censor lab: the self-checks of the sites broken for everyone, the CAPTCHA site, ghost
names, FIN injection and the on-path tap, with plain clients. ``checks`` has the rest and
registers these once its helpers exist, so this module is only ever imported through it.

A site broken for everyone must fail the same way from the agent's namespace and from the
net namespace, where the control measures; a censor's technique must act on the agent
only, and only on the name it targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.lab import addresses as plan
from tests.lab import checks
from tests.lab.censors_more import DEFAULT_PRIVATE
from tests.lab.checks import BLOCKPAGE_PHRASE, CheckResult, client
from tests.lab.lab import Lab
from tests.lab.scenarios import Scenario

# What the lab clients call each way a bad certificate fails (OpenSSL's verify messages).
CERT_ERRORS = {
    "expired": "certificate has expired",
    "wrong-host": "Hostname mismatch",
    "unknown-root": "unable to get local issuer certificate",
}


def _everywhere_dns(lab: Lab, row: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent's resolver's answer, and the public resolver's as the control's side sees it."""
    agent = client(lab, "agent", "dns_system", name=row.domain)
    control = client(lab, "net", "dns_udp", server=plan.PUBLIC_RESOLVER, name=row.domain)
    return agent, (control["replies"] or [{"rcode": "timeout", "answers": []}])[0]


def _dns_result(row: Scenario, agent: dict[str, Any], control: dict[str, Any]) -> str:
    return (
        f"agent: {agent['rcode']} {agent['answers']}; control: {control['rcode']} "
        f"{control['answers']}"
    )


def check_private_everywhere(lab: Lab, row: Scenario) -> CheckResult:
    private = row.params.get("answer", DEFAULT_PRIVATE)
    agent, control = _everywhere_dns(lab, row)
    port = 443 if row.scheme == "https" else 80
    connect = client(lab, "agent", "tcp", ip=private, port=port)
    passed = agent["answers"] == [private] == control["answers"]
    passed = passed and connect["error"] is not None
    observed = f"{_dns_result(row, agent, control)}; agent TCP to {private}: {connect['error']}"
    return checks._result(row, passed, observed)


def _no_address(lab: Lab, row: Scenario, rcode: str) -> CheckResult:
    agent, control = _everywhere_dns(lab, row)
    passed = agent["rcode"] == rcode == control["rcode"] and not agent["answers"]
    passed = passed and not control["answers"]
    return checks._result(row, passed, _dns_result(row, agent, control))


def check_nxdomain_everywhere(lab: Lab, row: Scenario) -> CheckResult:
    return _no_address(lab, row, "NXDOMAIN")


def check_noanswer_everywhere(lab: Lab, row: Scenario) -> CheckResult:
    return _no_address(lab, row, "NOERROR")


def check_bad_cert(lab: Lab, row: Scenario) -> CheckResult:
    ca = str(lab.ca_file)
    agent = client(lab, "agent", "tls", ip=row.ip, sni=row.domain, ca_file=ca)
    control = client(lab, "net", "tls", ip=row.ip, sni=row.domain, ca_file=ca)
    expected = CERT_ERRORS[row.params.get("cert", "expired")]
    passed = agent["error"] == control["error"] and expected in str(agent["error"])
    return checks._result(row, passed, f"agent: {agent['error']}; control: {control['error']}")


def _broken_server(lab: Lab, row: Scenario, error: str) -> CheckResult:
    seen = {
        "agent": client(lab, "agent", "tls", ip=row.ip, sni=row.domain)["error"],
        "agent, benign SNI": client(lab, "agent", "tls", ip=row.ip, sni=lab.table.benign_domain)[
            "error"
        ],
        "control": client(lab, "net", "tls", ip=row.ip, sni=row.domain)["error"],
    }
    passed = set(seen.values()) == {error}
    return checks._result(row, passed, "; ".join(f"{k}: {v}" for k, v in seen.items()))


def check_reset_everywhere(lab: Lab, row: Scenario) -> CheckResult:
    return _broken_server(lab, row, "ECONNRESET")


def check_silent_everywhere(lab: Lab, row: Scenario) -> CheckResult:
    return _broken_server(lab, row, "timeout")


def check_captcha(lab: Lab, row: Scenario) -> CheckResult:
    agent = checks._page(lab, "agent", row)
    control = checks._page(lab, "net", row)
    passed = agent.get("status") == 403 and "Checking your browser" in agent.get("body_head", "")
    passed = passed and control.get("status") == 200 and row.domain in (control.get("title") or "")
    observed = (
        f"agent: {agent.get('status')} {agent.get('title')!r}; "
        f"control: {control.get('status')} {control.get('title')!r}"
    )
    return checks._result(row, passed, observed)


def check_dns_ghost(lab: Lab, row: Scenario) -> CheckResult:
    system = client(lab, "agent", "dns_system", name=row.domain)
    public = client(lab, "agent", "dns_udp", server=plan.PUBLIC_RESOLVER, name=row.domain)
    rcodes = [reply["rcode"] for reply in public["replies"]]
    page = client(lab, "agent", "http_get", ip=plan.BLOCKPAGE_SERVER, host=row.domain)
    passed = system["answers"] == [plan.BLOCKPAGE_SERVER] and rcodes == ["NXDOMAIN"]
    passed = passed and BLOCKPAGE_PHRASE in page.get("body_head", "")
    observed = (
        f"ISP resolver: {system['rcode']} {system['answers']}; public resolver: {rcodes}; "
        f"{plan.BLOCKPAGE_SERVER} serves {page.get('title')!r}"
    )
    return checks._result(row, passed, observed)


def check_sni_fin(lab: Lab, row: Scenario) -> CheckResult:
    real = client(lab, "agent", "tls", ip=row.ip, sni=row.domain)
    benign = client(lab, "agent", "tls", ip=row.ip, sni=lab.table.benign_domain)
    control = client(lab, "net", "tls", ip=row.ip, sni=row.domain)
    passed = real["error"] == "eof" and benign["error"] is None and control["error"] is None
    observed = (
        f"SNI {row.domain}: {real['error']}; benign SNI: {benign['error'] or 'handshake ok'}; "
        f"control: {control['error'] or 'handshake ok'}"
    )
    return checks._result(row, passed, observed)


def check_host_fin(lab: Lab, row: Scenario) -> CheckResult:
    real = client(lab, "agent", "http_get", ip=row.ip, host=row.domain)
    benign = client(lab, "agent", "http_get", ip=row.ip, host=lab.table.benign_domain)
    control = client(lab, "net", "http_get", ip=row.ip, host=row.domain)
    passed = real["error"] == "eof" and benign.get("status") == 200
    passed = passed and control.get("status") == 200
    observed = (
        f"Host {row.domain}: {real['error'] or real.get('status')}; "
        f"benign Host: {benign.get('status') or benign['error']}; "
        f"control: {control.get('status') or control['error']}"
    )
    return checks._result(row, passed, observed)


def check_sni_onpath(lab: Lab, row: Scenario) -> CheckResult:
    """The ClientHello naming the row gets a RST that did not come from the server (another
    IP TTL than its SYN-ACK's), and the server's answer still arrives after it."""
    agent_link = plan.LINKS[0][1]
    seen = client(lab, "agent", "tls_capture", ip=row.ip, sni=row.domain, iface=agent_link)
    answers = [p for p in seen["packets"] if p["from_server"]]
    synack = next((p for p in answers if p["flags"] == "SA"), None)
    rst = next((i for i, p in enumerate(answers) if "R" in p["flags"]), None)
    # 0x16: a TLS handshake record, the ServerHello; it comes only after the tap's RST.
    hello = any(p["first_byte"] == 0x16 for p in answers[(rst or 0) + 1 :])
    benign = client(lab, "agent", "tls", ip=row.ip, sni=lab.table.benign_domain)
    control = client(lab, "net", "tls", ip=row.ip, sni=row.domain)
    rst_ttl = answers[rst]["ttl"] if rst is not None else None
    synack_ttl = synack["ttl"] if synack is not None else None
    passed = seen["error"] == "ECONNRESET" and None not in (rst_ttl, synack_ttl)
    passed = passed and rst_ttl != synack_ttl and hello
    passed = passed and benign["error"] is None and control["error"] is None
    observed = (
        f"SNI {row.domain}: {seen['error']}, RST ttl={rst_ttl} (SYN-ACK ttl={synack_ttl}), "
        f"ServerHello after it: {'seen' if hello else 'not seen'}; "
        f"benign SNI: {benign['error'] or 'handshake ok'}; "
        f"control: {control['error'] or 'handshake ok'}"
    )
    return checks._result(row, passed, observed, packets=seen["packets"])


MORE_CHECKS: dict[str, Callable[[Lab, Scenario], CheckResult]] = {
    "private-everywhere": check_private_everywhere,
    "nxdomain-everywhere": check_nxdomain_everywhere,
    "noanswer-everywhere": check_noanswer_everywhere,
    "bad-cert": check_bad_cert,
    "reset-everywhere": check_reset_everywhere,
    "silent-everywhere": check_silent_everywhere,
    "captcha": check_captcha,
    "dns-ghost": check_dns_ghost,
    "sni-fin": check_sni_fin,
    "host-fin": check_host_fin,
    "sni-onpath": check_sni_onpath,
}
