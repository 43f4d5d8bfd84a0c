"""Unit tests for the lab's throttlers and decoys (``tests.lab.throttling``): the rules a
throttle row gives (by SNI or Host, whatever the destination, a class per connection, in the
directions it says) and the commands that toggle a slow or lossy link."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab import censors
from tests.lab.checks import rate_kbps
from tests.lab.scenarios import ScenarioError, load, parse
from tests.lab.test_table import SOURCE, table_of
from tests.lab.throttling import THROTTLE_FLOWS, link_commands


def throttle_row(**changes: Any) -> dict[str, Any]:
    row = {"domain": "yt.com", "technique": "throttle", "hop": "border", "expected": "throttled"}
    return {**row, **changes}


def test_an_http_row_is_throttled_by_its_host_header_on_any_server() -> None:
    table = parse(table_of(throttle_row(scheme="http", params={"rate": "300kbit"})), SOURCE)
    rules = censors.hop_rules(table, "border")
    marks = [r for r in rules.mangle if "CONNMARK" in r]
    assert len(marks) == THROTTLE_FLOWS
    # No destination: the far end at the collector's address is held as the site is.
    assert all('--dport 80 -m string --hex-string "Host: yt.com|0d0a|"' in r for r in marks)
    assert all(" -d " not in r for r in rules.mangle)
    assert not any("-o up0" in r for r in rules.mangle)  # down only, by default


def test_each_connection_takes_the_next_class_in_both_directions() -> None:
    row = throttle_row(params={"rate": "150kbit", "direction": "both"})
    rules = censors.hop_rules(parse(table_of(row), SOURCE), "border")
    nth = [r.split("--packet ")[1].split()[0] for r in rules.mangle if "CONNMARK" in r]
    assert nth == [str(n) for n in range(THROTTLE_FLOWS)]
    for iface in ("down0", "up0"):
        assert ["qdisc", "add", "dev", iface, "root", "handle", "1:", "htb"] in rules.tc
        classes = [c for c in rules.tc if c[:4] == ["class", "add", "dev", iface]]
        assert len(classes) == THROTTLE_FLOWS
        assert all(c[-4:] == ["rate", "150kbit", "ceil", "150kbit"] for c in classes)
        leaves = [c for c in rules.tc if c[:3] == ["qdisc", "add", "dev"] and "pfifo" in c]
        assert len([c for c in leaves if c[3] == iface]) == THROTTLE_FLOWS


def test_an_upload_throttle_shapes_towards_the_internet_only() -> None:
    rules = censors.hop_rules(
        parse(table_of(throttle_row(params={"direction": "up"})), SOURCE), "border"
    )
    assert not any("-o down0" in r for r in rules.mangle)
    assert all(c[3] == "up0" for c in rules.tc)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"rate": "fast"}, "rate"),
        ({"loss": "5%"}, "loss must be a probability"),
        ({"loss": "0.05"}, "takes no param"),
    ],
)
def test_bad_throttle_params_are_refused(params: dict[str, str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse(table_of(throttle_row(params=params)), SOURCE)


def test_the_decoys_toggle_a_whole_link() -> None:
    table = load()
    slow = table.by_technique("link-slow")[0]
    on = link_commands(slow, True)
    assert [(role, argv[:6]) for role, argv in on] == [
        ("agent", ["tc", "qdisc", "replace", "dev", "up0", "root"]),
        ("net", ["tc", "qdisc", "replace", "dev", "down0", "root"]),
    ]
    assert all("tbf" in argv and slow.params["rate"] in argv for _, argv in on)
    lossy = table.by_technique("link-lossy")[0]
    drops = [argv for role, argv in link_commands(lossy, True) if role == "isp"]
    assert len(drops) == 2
    assert all(["--probability", lossy.params["loss"], "-j", "DROP"] == d[-4:] for d in drops)
    assert [d[1] for _, d in link_commands(lossy, False) if d[0] == "iptables"] == ["-D", "-D"]


def test_tc_rates_read_as_kbits() -> None:
    assert rate_kbps("150kbit") == 150
    assert rate_kbps("2mbit") == 2000
    assert rate_kbps("500bit") == 0.5
