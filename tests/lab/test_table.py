"""Unit tests for the lab's pure parts: the scenario table and the rules it produces."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.lab import addresses as plan
from tests.lab import censors
from tests.lab.scenarios import DEFAULT_TABLE, TECHNIQUES, ScenarioError, ScenarioTable, load, parse
from tests.lab.shell import LabError, require_root, require_tools

SOURCE = Path("test.toml")
BENIGN = {"domain": "example.com", "technique": "clean", "hop": "none", "expected": "ok"}


def table_of(*rows: dict[str, Any], benign: str = "example.com") -> dict[str, Any]:
    return {"benign_domain": benign, "scenario": [BENIGN, *rows]}


def test_default_table_covers_every_required_technique() -> None:
    table = load()
    techniques = {row.technique for row in table.rows}
    required = {
        "clean", "dns-nxdomain", "dns-bogon", "dns-redirect", "dns-inject", "ip-drop",
        "ip-reset", "sni-reset", "sni-drop", "host-reset", "host-drop", "http-blockpage",
        "tls-intercept", "throttle", "down", "shutdown", "redirect",
        "private-everywhere", "nxdomain-everywhere", "noanswer-everywhere", "bad-cert",
        "reset-everywhere", "silent-everywhere", "captcha", "dns-ghost", "sni-fin", "host-fin",
        "ip6-drop", "link-slow", "link-lossy", "quic-sni-drop", "vpn-drop", "sni-onpath",
    }  # fmt: skip
    assert required <= techniques
    assert len(table.by_technique("clean")) >= 3
    assert set(TECHNIQUES) == required


def test_rows_get_distinct_ips_in_table_order() -> None:
    table = load()
    ips = [row.ip for row in table.rows]
    assert len(set(ips)) == len(ips)
    assert ips[0] == "192.0.2.10"
    assert all(plan.in_lab(ip) for ip in ips)


def test_every_row_names_hop_and_expected_verdict() -> None:
    raw = tomllib.loads(DEFAULT_TABLE.read_text())
    for entry in raw["scenario"]:
        assert entry["hop"] in ("isp", "border", "none")
        assert entry["expected"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"domain": "a.org", "technique": "dns-teleport", "hop": "isp", "expected": "ok"},
         "unknown technique 'dns-teleport'"),
        ({"domain": "a.org", "technique": "dns-nxdomain", "hop": "border",
          "expected": "dns.nxdomain"}, "'hop' for dns-nxdomain must be isp"),
        ({"domain": "a.org", "technique": "clean", "hop": "none"}, "'expected' is required"),
        ({"domain": "not a domain", "technique": "clean", "hop": "none", "expected": "ok"},
         "not a valid host name"),
        ({"domain": "a.org", "technique": "clean", "hop": "none", "expected": "ok",
          "colour": "red"}, "unknown key(s) colour"),
        ({"domain": "a.org", "technique": "dns-bogon", "hop": "isp", "expected": "dns.bogon",
          "params": {"answer": "ten"}}, "params.answer must be an IPv4 address"),
        ({"domain": "a.org", "technique": "throttle", "hop": "isp", "expected": "throttled",
          "params": {"rate": "fast"}}, "params.rate must look like 1mbit"),
        ({"domain": "a.org", "technique": "ip-drop", "hop": "isp", "expected": "tcp.timeout",
          "params": {"rate": "1mbit"}}, "ip-drop takes no param(s) rate"),
        ({"domain": "a.org", "technique": "clean", "hop": "none", "expected": "Not A Verdict"},
         "is not a verdict"),
        ({"domain": "a.org", "technique": "clean", "hop": "none", "expected": "ok",
          "scheme": "gopher"}, "'scheme' must be one of"),
    ],
)  # fmt: skip
def test_bad_rows_are_refused_with_the_row_and_key(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as excinfo:
        parse(table_of(row), SOURCE)
    assert message in str(excinfo.value)
    assert "scenario #2" in str(excinfo.value)


def test_string_matched_domain_may_not_hide_in_another_name() -> None:
    rows = (
        {"domain": "x.com", "technique": "sni-reset", "hop": "border", "expected": "tls.reset"},
        {"domain": "dropbox.com", "technique": "clean", "hop": "none", "expected": "ok"},
    )
    with pytest.raises(ScenarioError, match=r"would also catch dropbox\.com"):
        parse(table_of(*rows), SOURCE)


def test_benign_domain_must_be_a_clean_https_row() -> None:
    with pytest.raises(ScenarioError, match=r"benign_domain nothere\.org has no row"):
        parse(table_of(benign="nothere.org"), SOURCE)
    row = {"domain": "a.org", "technique": "ip-drop", "hop": "isp", "expected": "tcp.timeout"}
    with pytest.raises(ScenarioError, match="must name a clean https row"):
        parse(table_of(row, benign="a.org"), SOURCE)


def test_duplicate_domains_and_empty_tables_are_refused() -> None:
    with pytest.raises(ScenarioError, match="appears twice"):
        parse(table_of(BENIGN), SOURCE)
    with pytest.raises(ScenarioError, match="no \\[\\[scenario\\]\\] rows"):
        parse({"benign_domain": "example.com"}, SOURCE)


def test_unreadable_and_invalid_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario table"):
        load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[scenario]\n")
    with pytest.raises(ScenarioError, match=r"broken\.toml: not valid TOML"):
        load(broken)


def _one(row: dict[str, Any]) -> ScenarioTable:
    return parse(table_of(row), SOURCE)


def test_sni_and_host_rules_match_the_name_on_the_wire() -> None:
    table = parse(
        table_of(
            {"domain": "x.com", "technique": "sni-reset", "hop": "border", "expected": "tls.reset"},
            {"domain": "h.org", "technique": "host-drop", "hop": "border", "expected": "x.y"},
        ),
        SOURCE,
    )  # fmt: skip
    rules = censors.hop_rules(table, "border").filter
    assert rules == [
        '-A FORWARD -p tcp --dport 443 -m string --string "x.com" --algo bm '
        "-j REJECT --reject-with tcp-reset",
        '-A FORWARD -p tcp --dport 80 -m string --hex-string "Host: h.org|0d0a|" --algo bm -j DROP',
    ]
    assert censors.hop_rules(table, "isp").iptables_restore() == "\n"


def test_ip_rules_target_the_rows_ip() -> None:
    table = _one({"domain": "t.org", "technique": "ip-reset", "hop": "isp", "expected": "x.y"})
    ip = table.domain("t.org").ip
    assert censors.hop_rules(table, "isp").filter == [
        f"-A FORWARD -d {ip} -p tcp -j REJECT --reject-with tcp-reset"
    ]


def test_throttle_marks_the_connection_and_shapes_towards_the_agent() -> None:
    row = {
        "domain": "yt.com", "technique": "throttle", "hop": "border", "expected": "throttled",
        "params": {"rate": "500kbit"},
    }  # fmt: skip
    rules = censors.hop_rules(_one(row), "border")
    assert any("CONNMARK --set-mark 16" in r and '"yt.com"' in r for r in rules.mangle)
    assert any("-o down0" in r and "CLASSIFY --set-class 1:10" in r for r in rules.mangle)
    assert ["qdisc", "add", "dev", "down0", "root", "handle", "1:", "htb"] in rules.tc
    assert any(c[-4:] == ["rate", "500kbit", "ceil", "500kbit"] for c in rules.tc)


def test_dns_censorship_goes_to_the_isp_resolver_only() -> None:
    table = load()
    isp = censors.isp_resolver_conf(table)
    auth = censors.authoritative_conf(table)
    assert "address=/hrcp-web.org/\n" in isp
    assert "address=/balochistanpost.net/10.10.34.34\n" in isp
    assert f"address=/rabwah.net/{plan.BLOCKPAGE_SERVER}\n" in isp
    assert "\naddress=" not in auth
    # Names broken for everyone are the authoritative server's: tests/lab/test_more_rows.py.
    for row in table.rows:
        if row.technique in ("clean", "dns-nxdomain", "dns-bogon", "dns-redirect"):
            six = f",{row.ip6}" if row.ip6 else ""
            assert f"host-record={row.domain},www.{row.domain},{row.ip}{six}\n" in auth


def test_injector_and_http_boxes_go_where_the_rows_say() -> None:
    table = load()
    injector = censors.injector_config(table, "border")
    assert injector is not None
    assert injector["domains"] == ["signal.org"]
    assert censors.injector_config(table, "isp") is None
    certs = {"blockpage": "b.pem", "interceptor": "i.pem"}
    isp = censors.censor_http_config(table, "isp", certs)
    assert isp["proxy"]["blocked_hosts"] == ["ahmadiyya.org"]
    assert isp["interceptor"]["hosts"] == ["gandhara.rferl.org"]
    assert isp["blockpage"]["listen"] == [plan.BLOCKPAGE_SERVER, plan.twin(plan.BLOCKPAGE_SERVER)]
    assert not any(censors.censor_http_config(table, "border", certs).values())


def test_missing_tools_name_the_debian_package() -> None:
    with pytest.raises(LabError, match="apt-get install no-such-package"):
        require_tools({"netsonde-no-such-tool": "no-such-package"})


def test_non_root_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        require_root()


def test_dns_censorship_of_a_name_may_not_contradict_its_subdomains() -> None:
    rows = (
        {"domain": "a.org", "technique": "dns-nxdomain", "hop": "isp", "expected": "dns.nxdomain"},
        {"domain": "www.a.org", "technique": "clean", "hop": "none", "expected": "ok"},
    )
    with pytest.raises(ScenarioError, match=r"also applies to its subdomain www\.a\.org"):
        parse(table_of(*rows), SOURCE)


def test_every_ipv4_address_of_the_plan_has_an_ipv6_twin_in_the_documentation_range() -> None:
    assert plan.twin("192.0.2.10") == "2001:db8:4::c000:20a"
    assert plan.twin("100.64.1.2/30") == "2001:db8:4::6440:102/126"
    assert plan.twin("default") == "::/0"
    assert plan.bogon_twin("10.10.34.34") == "fd00::a0a:2222"
    table = load()
    # Rows of IPv4-only techniques have no twin; every other row's is in the lab's range.
    dual = [row for row in table.rows if row.ip6 is not None]
    assert dual
    assert all(row.ip6 == plan.twin(row.ip) and plan.in_lab(row.ip6) for row in dual)


def test_a_site_is_dual_stack_unless_its_row_or_technique_says_otherwise() -> None:
    four = {"domain": "a.org", "technique": "clean", "hop": "none", "expected": "ok"}
    table = parse(table_of(four, {**four, "domain": "b.org", "ipv6": False}), SOURCE)
    assert table.domain("a.org").ip6 is not None
    assert table.domain("b.org").ip6 is None
    auth = censors.authoritative_conf(table)
    assert f"host-record=b.org,www.b.org,{table.domain('b.org').ip}\n" in auth
    assert [s["ip"] for s in censors.webserver_config(table, {"a.org": "a", "b.org": "b",
            "example.com": "e"})["sites"] if s["domain"] != "example.com"] == [
        table.domain("a.org").ip, table.domain("a.org").ip6, table.domain("b.org").ip
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"ipv6": "yes"}, "'ipv6' must be true or false"),
        ({"technique": "ip6-drop", "hop": "isp", "ipv6": False}, "ip6-drop needs"),
        ({"family": "5"}, "'family' must be"),
        ({"family": "6", "ipv6": False}, "for a dual-stack site"),
    ],
)
def test_bad_ipv6_keys_are_refused(row: dict[str, Any], message: str) -> None:
    base = {"domain": "a.org", "technique": "clean", "hop": "none", "expected": "ok"}
    with pytest.raises(ScenarioError, match=message):
        parse(table_of({**base, **row}), SOURCE)


def test_ipv6_rules_mirror_ipv4_and_ip6_drop_leaves_ipv4_alone() -> None:
    table = parse(
        table_of(
            {"domain": "t.org", "technique": "ip-drop", "hop": "isp", "expected": "x.y"},
            {"domain": "s.org", "technique": "ip6-drop", "hop": "isp", "expected": "x.y"},
            {"domain": "x.com", "technique": "sni-reset", "hop": "isp", "expected": "x.y"},
        ),
        SOURCE,
    )
    t, s = table.domain("t.org"), table.domain("s.org")
    four, six = censors.hop_rules(table, "isp"), censors.hop_rules(table, "isp", family=6)
    assert four.filter[0] == f"-A FORWARD -d {t.ip} -j DROP"
    assert six.filter[:2] == [f"-A FORWARD -d {t.ip6} -j DROP", f"-A FORWARD -d {s.ip6} -j DROP"]
    assert not any(s.ip in rule for rule in four.filter)
    assert four.filter[1:] == six.filter[2:]  # the string rule, alike for both
    assert six.tc == []


def test_dns_censors_lie_about_aaaa_too() -> None:
    table = load()
    isp = censors.isp_resolver_conf(table)
    assert f"address=/balochistanpost.net/{plan.bogon_twin('10.10.34.34')}\n" in isp
    assert f"address=/rabwah.net/{plan.twin(plan.BLOCKPAGE_SERVER)}\n" in isp
    injector = censors.injector_config(table, "border")
    assert injector is not None
    assert injector["answer6"] == plan.twin(injector["answer"])


@pytest.mark.parametrize(("qtype", "expected"), [("A", "203.0.113.66"), ("AAAA", "2001:db8::66")])
def test_the_injector_forges_an_answer_of_the_family_asked(qtype: str, expected: str) -> None:
    import socket

    import dns.message

    from tests.lab.injector import Query, forge_reply, read_question

    wire = dns.message.make_query("signal.org", qtype).to_wire()
    question = read_question(wire)
    assert question is not None
    query = Query(b"\x64\x40\x01\x02", 5353, wire, question[0], question[1])
    answer = socket.inet_aton("203.0.113.66")
    answer6 = socket.inet_pton(socket.AF_INET6, "2001:db8::66")
    reply = dns.message.from_wire(forge_reply(query, answer, answer6))
    assert [r.to_text() for rrset in reply.answer for r in rrset] == [expected]
