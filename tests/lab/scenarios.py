"""Censor lab: load and validate the scenario table (``scenarios.toml``).

The table is the one source of truth for what the lab censors. Everything that
builds, checks or demonstrates the lab reads rows through this module, so a
row added to the file reaches the lab, the self-tests, the demo and the
benchmarks alike.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.addresses import HOPS, site_address, site_address6

DEFAULT_TABLE = Path(__file__).with_name("scenarios.toml")


@dataclass(frozen=True)
class Technique:
    name: str
    description: str
    hops: tuple[str, ...]
    # Techniques that match the domain as a plain string on the wire (SNI, Host)
    # would also catch any other name that contains it.
    string_match: bool = False
    # Techniques that act on a DNS name act on its subdomains too, as dnsmasq's address= does.
    covers_subdomains: bool = False


TECHNIQUES: dict[str, Technique] = {
    t.name: t
    for t in (
        Technique("clean", "no censor", ("none",)),
        Technique("down", "nothing listens on the site's IP, for anyone", ("none",)),
        Technique(
            "dns-nxdomain", "the ISP resolver answers NXDOMAIN", ("isp",), covers_subdomains=True
        ),
        Technique(
            "dns-bogon",
            "the ISP resolver answers a private address",
            ("isp",),
            covers_subdomains=True,
        ),
        Technique(
            "dns-redirect",
            "the ISP resolver answers the blockpage server",
            ("isp",),
            covers_subdomains=True,
        ),
        Technique(
            "dns-inject",
            "an on-path injector races forged DNS replies",
            HOPS,
            covers_subdomains=True,
        ),
        Technique("ip-drop", "packets to the site's IP are dropped", HOPS),
        Technique("ip-reset", "SYNs to the site's IP are answered with a RST", HOPS),
        Technique("ip6-drop", "packets to the site's IPv6 address alone are dropped", HOPS),
        Technique("sni-reset", "a ClientHello naming the domain gets a RST", HOPS, True),
        Technique("sni-drop", "a ClientHello naming the domain is dropped", HOPS, True),
        Technique("host-reset", "an HTTP request with its Host gets a RST", HOPS, True),
        Technique("host-drop", "an HTTP request with its Host is dropped", HOPS, True),
        Technique("http-blockpage", "a transparent proxy serves a blockpage", HOPS),
        Technique("tls-intercept", "a TLS interceptor presents another CA's cert", HOPS),
        Technique(
            "throttle",
            "tc slows connections whose ClientHello (https) or Host header (http) names it",
            HOPS,
            True,
        ),
        Technique("link-slow", "the agent's whole link is slow for every flow (toggled)", ("isp",)),
        Technique(
            "link-lossy", "the agent's whole link drops and delays packets (toggled)", ("isp",)
        ),
        Technique("shutdown", "the ISP cuts the agent's uplink (toggled)", ("isp",)),
        Technique(
            "quic-sni-drop",
            "a QUIC Initial whose ClientHello names it (or a subdomain) is dropped, to any server",
            HOPS,
        ),
        Technique(
            "vpn-drop",
            "WireGuard and OpenVPN handshakes are dropped (TCP: reset) on every flow (toggled)",
            ("isp",),
        ),
        Technique(
            "redirect",
            "the site redirects (params: to, status); a censor may sit on a later hop",
            ("none",),
        ),
        # Sites broken for everyone, the control included: down, never censored.
        Technique("private-everywhere", "the name resolves to 127.0.0.1 for all", ("none",)),
        Technique("nxdomain-everywhere", "the name exists nowhere", ("none",)),
        Technique("noanswer-everywhere", "the name has no address record", ("none",)),
        Technique("bad-cert", "the site's certificate fails for all (params: cert)", ("none",)),
        Technique("reset-everywhere", "the site's server resets every connection", ("none",)),
        Technique("silent-everywhere", "the site's server never answers", ("none",)),
        Technique("captcha", "the site serves a challenge to the ISP's addresses", ("none",)),
        Technique(
            "dns-ghost",
            "the name exists nowhere; the ISP resolver answers the blockpage server",
            ("isp",),
            covers_subdomains=True,
        ),
        Technique("sni-fin", "a ClientHello naming the domain gets a forged FIN", HOPS, True),
        Technique("host-fin", "an HTTP request with its Host gets a forged FIN", HOPS, True),
        Technique(
            "sni-onpath",
            "an on-path tap races a RST to the client; the ClientHello still reaches the server",
            HOPS,
            True,
        ),
    )
}
# Rows whose IP no lab web server serves: nothing listens, or tests.lab.broken_server does.
NOT_SERVED = frozenset({"down", "reset-everywhere", "silent-everywhere"})
BAD_CERTS = ("expired", "wrong-host", "unknown-root")

# Techniques the lab applies to IPv6 as to IPv4: their sites are dual-stack (an IPv6 address
# and a AAAA record too) unless a row says ipv6 = false. Any other technique's are IPv4 only.
DUAL_STACK = frozenset(
    {
        "clean", "down", "dns-nxdomain", "dns-bogon", "dns-redirect", "dns-inject", "ip-drop",
        "ip-reset", "ip6-drop", "sni-reset", "sni-drop", "host-reset", "host-drop",
        "http-blockpage", "tls-intercept", "throttle", "shutdown",
    }
)  # fmt: skip

SCHEMES = ("https", "http")
TRIGGERS = ("sni", "host", "ip", "resolver")
VERDICT_RE = re.compile(r"^(ok|down|offline|inconclusive|throttled|[a-z]+\.[a-z_]+)$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TOP_KEYS = {"benign_domain", "scenario"}
ROW_KEYS = {"domain", "technique", "hop", "expected", "scheme", "trigger", "params", "notes"}
# Whether the site is dual-stack (see DUAL_STACK), and the family the evidence names blocked.
ROW_KEYS |= {"ipv6", "family"}
FAMILIES = ("4", "6")


class ScenarioError(ValueError):
    """The scenario table is malformed; the message names the row and the key."""


@dataclass(frozen=True)
class Scenario:
    domain: str
    technique: str
    hop: str
    expected: str
    ip: str
    scheme: str = "https"
    trigger: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    ip6: str | None = None  # None: the site is IPv4 only
    family: str | None = None  # the family the evidence names blocked, if only one is

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.domain}/"

    @property
    def serves(self) -> bool:
        """Whether the lab runs a web server for this domain."""
        return self.technique not in NOT_SERVED

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "url": self.url,
            "ip": self.ip,
            "ip6": self.ip6,
            "family": self.family,
            "technique": self.technique,
            "hop": self.hop,
            "expected": self.expected,
            "trigger": self.trigger,
            "params": dict(self.params),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class ScenarioTable:
    rows: tuple[Scenario, ...]
    source: Path
    benign_domain: str

    def by_technique(self, technique: str) -> list[Scenario]:
        return [row for row in self.rows if row.technique == technique]

    def domain(self, name: str) -> Scenario:
        for row in self.rows:
            if row.domain == name:
                return row
        raise KeyError(name)

    @property
    def benign(self) -> Scenario:
        """The clean row whose name is the benign SNI and Host of swap tests."""
        return self.domain(self.benign_domain)


def load(path: Path = DEFAULT_TABLE) -> ScenarioTable:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario table {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return parse(raw, path)


def parse(raw: dict[str, Any], source: Path) -> ScenarioTable:
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ScenarioError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    entries = raw.get("scenario")
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{source}: no [[scenario]] rows")
    rows = tuple(_parse_row(entry, index, source) for index, entry in enumerate(entries))
    benign = raw.get("benign_domain")
    if not isinstance(benign, str):
        raise ScenarioError(f"{source}: 'benign_domain' is required (a clean https row's domain)")
    table = ScenarioTable(rows=rows, source=source, benign_domain=benign.lower())
    _check_table(table)
    return table


def _parse_row(entry: Any, index: int, source: Path) -> Scenario:
    where = f"{source}: scenario #{index + 1}"
    if not isinstance(entry, dict):
        raise ScenarioError(f"{where}: a row must be a table")
    unknown = set(entry) - ROW_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("domain", "technique", "hop", "expected"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ScenarioError(f"{where}: '{key}' is required and must be a string")
    domain = entry["domain"].lower().rstrip(".")
    where = f"{where} ({domain})"
    if not DOMAIN_RE.match(domain):
        raise ScenarioError(f"{where}: 'domain' is not a valid host name")
    technique = TECHNIQUES.get(entry["technique"])
    if technique is None:
        known = ", ".join(TECHNIQUES)
        raise ScenarioError(f"{where}: unknown technique {entry['technique']!r} (known: {known})")
    if entry["hop"] not in technique.hops:
        allowed = " or ".join(technique.hops)
        raise ScenarioError(f"{where}: 'hop' for {technique.name} must be {allowed}")
    if not VERDICT_RE.match(entry["expected"]):
        raise ScenarioError(f"{where}: 'expected' {entry['expected']!r} is not a verdict")
    scheme = entry.get("scheme", "https")
    if scheme not in SCHEMES:
        raise ScenarioError(f"{where}: 'scheme' must be one of {', '.join(SCHEMES)}")
    trigger = entry.get("trigger")
    if trigger is not None and trigger not in TRIGGERS:
        raise ScenarioError(f"{where}: 'trigger' must be one of {', '.join(TRIGGERS)}")
    params = entry.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise ScenarioError(f"{where}: 'params' must be a table of strings")
    _check_params(technique.name, params, where)
    notes = entry.get("notes", "")
    if not isinstance(notes, str):
        raise ScenarioError(f"{where}: 'notes' must be a string")
    dual = _dual_stack(entry.get("ipv6"), technique, where)
    family = entry.get("family")
    if family is not None and (family not in FAMILIES or not dual):
        raise ScenarioError(f'{where}: \'family\' must be "4" or "6", for a dual-stack site')
    return Scenario(
        domain=domain,
        technique=technique.name,
        hop=entry["hop"],
        expected=entry["expected"],
        ip=site_address(index),
        scheme=scheme,
        trigger=trigger,
        params=dict(params),
        notes=notes,
        ip6=site_address6(index) if dual else None,
        family=family,
    )


def _dual_stack(ipv6: Any, technique: Technique, where: str) -> bool:
    """Whether a row's site has an IPv6 address: its technique's default, or the row's say."""
    if ipv6 is None:
        return technique.name in DUAL_STACK
    if not isinstance(ipv6, bool):
        raise ScenarioError(f"{where}: 'ipv6' must be true or false")
    if ipv6 and technique.name not in DUAL_STACK:
        raise ScenarioError(f"{where}: {technique.name} is not applied to IPv6 by the lab")
    if not ipv6 and technique.name == "ip6-drop":
        raise ScenarioError(f"{where}: ip6-drop needs the site's IPv6 address")
    return ipv6


def _check_params(technique: str, params: dict[str, str], where: str) -> None:
    if "answer" in params:
        try:
            ipaddress.IPv4Address(params["answer"])
        except ValueError as exc:
            raise ScenarioError(f"{where}: params.answer must be an IPv4 address") from exc
    if "rate" in params and not re.fullmatch(r"\d+(bit|kbit|mbit|gbit)", params["rate"]):
        raise ScenarioError(f"{where}: params.rate must look like 1mbit or 500kbit")
    if technique == "redirect":
        _check_redirect(params, where)
    if technique == "bad-cert" and params.get("cert", BAD_CERTS[0]) not in BAD_CERTS:
        raise ScenarioError(f"{where}: params.cert must be one of {', '.join(BAD_CERTS)}")
    _check_throttle(params, where)
    allowed = {
        "private-everywhere": {"answer"},
        "bad-cert": {"cert"},
        "dns-bogon": {"answer"},
        "dns-inject": {"answer"},
        "throttle": {"rate", "direction"},
        "link-slow": {"rate"},
        "link-lossy": {"rate", "loss"},
        "redirect": {"to", "status", "redirect_hop", "failure", "from_scheme"},
    }
    extra = set(params) - allowed.get(technique, set())
    if extra:
        raise ScenarioError(f"{where}: {technique} takes no param(s) {', '.join(sorted(extra))}")


def _check_throttle(params: dict[str, str], where: str) -> None:
    if params.get("direction", "down") not in ("down", "up", "both"):
        raise ScenarioError(f"{where}: params.direction must be down, up or both")
    if "loss" in params and not re.fullmatch(r"0\.\d+", params["loss"]):
        raise ScenarioError(f"{where}: params.loss must be a probability such as 0.05")


def _check_redirect(params: dict[str, str], where: str) -> None:
    if not params.get("to"):
        raise ScenarioError(f"{where}: a redirect row needs params.to, its Location")
    if params.get("status", "302") not in {"301", "302", "303", "307", "308"}:
        raise ScenarioError(f"{where}: params.status must be a redirect status (301-308)")
    if params.get("from_scheme", "http") not in SCHEMES:
        raise ScenarioError(f"{where}: params.from_scheme must be http or https")
    if not params.get("redirect_hop", "0").isdigit():
        raise ScenarioError(f"{where}: params.redirect_hop must be a whole number")


def _check_table(table: ScenarioTable) -> None:
    seen: set[str] = set()
    for row in table.rows:
        if row.domain in seen:
            raise ScenarioError(f"{table.source}: domain {row.domain} appears twice")
        seen.add(row.domain)
    for toggled in ("shutdown", "vpn-drop"):
        if len(table.by_technique(toggled)) > 1:
            raise ScenarioError(f"{table.source}: at most one {toggled} row")
    for row in table.rows:
        if TECHNIQUES[row.technique].covers_subdomains:
            for other in table.rows:
                if other.domain.endswith(f".{row.domain}") and other.technique != row.technique:
                    raise ScenarioError(
                        f"{table.source}: {row.technique} on {row.domain} also applies to "
                        f"its subdomain {other.domain}, whose row says {other.technique}"
                    )
        if not TECHNIQUES[row.technique].string_match:
            continue
        for other in table.rows:
            if other is not row and row.domain in other.domain:
                raise ScenarioError(
                    f"{table.source}: {row.domain} is filtered by string match, which would "
                    f"also catch {other.domain}; pick names that do not contain each other"
                )
    try:
        benign = table.benign
    except KeyError:
        raise ScenarioError(
            f"{table.source}: benign_domain {table.benign_domain} has no row"
        ) from None
    if benign.technique != "clean" or benign.scheme != "https":
        raise ScenarioError(f"{table.source}: benign_domain must name a clean https row")
    for row in table.rows:
        if TECHNIQUES[row.technique].string_match and row.domain in benign.domain:
            raise ScenarioError(f"{table.source}: the benign name contains {row.domain}")
