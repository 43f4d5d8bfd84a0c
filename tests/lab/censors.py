"""Censor lab: turn scenario rows into censor configuration.

Pure functions from the scenario table to what each real tool needs: dnsmasq
config files, iptables-restore and ip6tables-restore rule sets, tc commands, and the
configs of the lab's own daemons. Keeping this free of I/O lets unit tests read the
exact rules a scenario produces. A dual-stack row's censor acts on both families alike
(its AAAA record, its IPv6 address), except where the technique says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.lab import addresses as plan
from tests.lab import censors_more as more
from tests.lab.protocol_censors import protocol_rules
from tests.lab.scenarios import Scenario, ScenarioTable
from tests.lab.throttling import throttle_rules

DNS_TTL = 300
DEFAULT_BOGON = "10.10.34.34"


def _dnsmasq_common(listen: str) -> list[str]:
    return [
        "no-resolv",
        "no-hosts",
        "no-poll",
        "bind-interfaces",
        f"listen-address={listen}",
        f"local-ttl={DNS_TTL}",
        "log-queries",
    ]


def authoritative_conf(table: ScenarioTable) -> str:
    """The net's authoritative server: every domain (and its www.) at its own IP, but for
    the names broken for everyone (``censors_more.authoritative_records``)."""
    lines = _dnsmasq_common(plan.AUTHORITATIVE_DNS)
    lines += [line for row in table.rows for line in more.authoritative_records(row)]
    lines.append("local=/#/")  # authoritative for everything: unknown names are NXDOMAIN
    return "\n".join(lines) + "\n"


def isp_resolver_conf(table: ScenarioTable) -> str:
    """The ISP's resolver: forwards to the authoritative server, and lies as told."""
    lines = _dnsmasq_common(plan.ISP_RESOLVER)
    lines.append(f"server={plan.AUTHORITATIVE_DNS}")
    for row in table.rows:
        if row.technique == "dns-nxdomain":
            lines.append(f"address=/{row.domain}/")
        elif row.technique == "dns-bogon":
            bogon = row.params.get("answer", DEFAULT_BOGON)
            lines += _lie(row, bogon, plan.bogon_twin(bogon))
        elif row.technique == "dns-redirect":
            lines += _lie(row, plan.BLOCKPAGE_SERVER, plan.twin(plan.BLOCKPAGE_SERVER))
        lines += more.isp_resolver_records(row)
    return "\n".join(lines) + "\n"


def _lie(row: Scenario, answer: str, answer6: str) -> list[str]:
    """The resolver's false answer: for AAAA too when the site is dual-stack."""
    return [f"address=/{row.domain}/{a}" for a in (answer, answer6 if row.ip6 else None) if a]


def public_resolver_config() -> dict[str, Any]:
    return {
        "listen": plan.PUBLIC_RESOLVER,
        "port": 53,
        "upstream": plan.AUTHORITATIVE_DNS,
        "upstream_port": 53,
        "delay_ms": 25,
    }


def webserver_config(table: ScenarioTable, cert_for: dict[str, str]) -> dict[str, Any]:
    sites = [
        {
            "domain": row.domain,
            "ip": ip,
            "cert": cert_for[row.domain],
            **(
                {
                    "redirect_to": row.params["to"],
                    "redirect_status": row.params.get("status"),
                    "redirect_from": row.params.get("from_scheme"),
                }
                if row.technique == "redirect"
                else {}
            ),
            **more.site_extras(row),
        }
        for row in table.rows
        if row.serves
        for ip in (row.ip, row.ip6)
        if ip is not None
    ]
    return {"sites": sites, "http_port": 80, "https_port": 443}


def _string_rule(row: Scenario, target: str) -> str:
    if row.technique.startswith("sni-"):
        match = f'--dport 443 -m string --string "{row.domain}" --algo bm'
    else:
        # CRLF after the name, so a Host header that merely starts with it does not match.
        match = f'--dport 80 -m string --hex-string "Host: {row.domain}|0d0a|" --algo bm'
    return f"-A FORWARD -p tcp {match} -j {target}"


@dataclass
class HopRules:
    filter: list[str] = field(default_factory=list)
    nat: list[str] = field(default_factory=list)
    mangle: list[str] = field(default_factory=list)
    tc: list[list[str]] = field(default_factory=list)

    def iptables_restore(self) -> str:
        out: list[str] = []
        for table, rules in (("filter", self.filter), ("nat", self.nat), ("mangle", self.mangle)):
            if rules:
                out += [f"*{table}", *rules, "COMMIT"]
        return "\n".join(out) + "\n"


RESET = "REJECT --reject-with tcp-reset"


def hop_rules(table: ScenarioTable, hop: str, family: int = 4) -> HopRules:
    """One hop's rules for iptables (``family`` 4, with the tc commands) or ip6tables (6)."""
    rules = HopRules()
    iface = plan.AGENT_FACING_IFACE[hop]
    for row in table.rows:
        ip = row.ip if family == 4 else row.ip6
        if row.hop != hop or ip is None:
            continue
        technique = row.technique
        if technique == "ip-drop" or (technique == "ip6-drop" and family == 6):
            rules.filter.append(f"-A FORWARD -d {ip} -j DROP")
        elif technique == "ip-reset":
            rules.filter.append(f"-A FORWARD -d {ip} -p tcp -j {RESET}")
        elif technique in ("sni-reset", "host-reset"):
            rules.filter.append(_string_rule(row, RESET))
        elif technique in ("sni-drop", "host-drop", "sni-fin", "host-fin"):
            # The FIN injector (censors_more.fin_injector_config) answers what this drops.
            rules.filter.append(_string_rule(row, "DROP"))
        elif technique == "http-blockpage":
            rules.nat.append(
                f"-A PREROUTING -i {iface} -d {ip} -p tcp --dport 80 "
                f"-j REDIRECT --to-ports {plan.TRANSPARENT_PROXY_PORT}"
            )
        elif technique == "tls-intercept":
            rules.nat.append(
                f"-A PREROUTING -i {iface} -d {ip} -p tcp --dport 443 "
                f"-j REDIRECT --to-ports {plan.TLS_INTERCEPTOR_PORT}"
            )
    if family == 4:  # tests.lab.throttling and tests.lab.protocol_censors act on IPv4 flows
        throttle_rules(table, hop, rules)
        protocol_rules(table, hop, rules)
    return rules


def censor_http_config(table: ScenarioTable, hop: str, certs: dict[str, str]) -> dict[str, Any]:
    """The HTTP-layer boxes on one hop; None where the hop needs none."""
    rows = [row for row in table.rows if row.hop == hop]
    proxy_hosts = [row.domain for row in rows if row.technique == "http-blockpage"]
    intercepted = [row.domain for row in rows if row.technique == "tls-intercept"]
    blockpage = hop == "isp" and more.needs_blockpage_server(table)
    return {
        "blockpage": (
            {
                "listen": [plan.BLOCKPAGE_SERVER, plan.twin(plan.BLOCKPAGE_SERVER)],
                "cert": certs["blockpage"],
            }
            if blockpage
            else None
        ),
        "proxy": (
            {"port": plan.TRANSPARENT_PROXY_PORT, "blocked_hosts": proxy_hosts}
            if proxy_hosts
            else None
        ),
        "interceptor": (
            {"port": plan.TLS_INTERCEPTOR_PORT, "cert": certs["interceptor"], "hosts": intercepted}
            if intercepted
            else None
        ),
    }


def injector_config(table: ScenarioTable, hop: str) -> dict[str, Any] | None:
    rows = [row for row in table.rows if row.hop == hop and row.technique == "dns-inject"]
    if not rows:
        return None
    answers = {row.params.get("answer", plan.INJECTED_ANSWER) for row in rows}
    if len(answers) > 1:
        raise ValueError(f"dns-inject rows on {hop} must share one forged answer")
    return {
        "iface": plan.AGENT_FACING_IFACE[hop],
        "resolver": plan.PUBLIC_RESOLVER,
        "domains": [row.domain for row in rows],
        "answer": (answer := answers.pop()),
        "answer6": plan.twin(answer),  # for AAAA queries
    }
