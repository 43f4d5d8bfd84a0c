"""The one host-name rule: a target's host, ``--benign-sni``, ``benign_sni`` and the
collector's ``--listen`` host all follow it."""

from __future__ import annotations

import pytest

from agent.model.hostnames import is_host_name, normalize_host
from agent.model.measurement import Target, TargetError

LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, LABEL_63, LABEL_63, "b" * 61])  # 4 * 63 + 1 = 253


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),  # a trailing dot, the root, is dropped
        ("  example.com \n", "example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),  # underscores: real names carry them
        ("a_b-c.example", "a_b-c.example"),
        ("localhost", "localhost"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("bücher.de", "xn--bcher-kva.de"),  # IDNA: the ASCII form that goes on the wire
        ("BÜCHER.de.", "xn--bcher-kva.de"),
        (f"{LABEL_63}.com", f"{LABEL_63}.com"),
        (NAME_253, NAME_253),
        (f"{NAME_253}.", NAME_253),  # the trailing dot does not count towards 253
    ],
)
def test_names_by_the_rule(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected
    assert is_host_name(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "-example.com",  # a hyphen at either edge of a label
        "example-.com",
        "www.-example.com",
        "a..b",  # an empty label
        ".example.com",
        "exa mple.com",
        "bad_host!",
        "example.com/",
        "a" * 64 + ".com",  # a label over 63
        f"{NAME_253}b",  # a name over 253
        "a.b\n.c",
    ],
)
def test_not_names(raw: str) -> None:
    assert normalize_host(raw) is None
    assert not is_host_name(raw)


def test_is_host_name_takes_the_normalized_form_only() -> None:
    assert is_host_name("example.com")
    assert not is_host_name("Example.com")
    assert not is_host_name("example.com.")
    assert not is_host_name("bücher.de")
    assert not is_host_name(" example.com")


def test_a_target_follows_the_rule_and_takes_ip_literals_too() -> None:
    assert Target.parse("_dmarc.example.com").host == "_dmarc.example.com"
    assert Target.parse("https://Bücher.DE./x").url == "https://xn--bcher-kva.de/x"
    assert Target.parse("http://192.0.2.7:8080/").host == "192.0.2.7"
    assert Target.parse("https://[2001:DB8::1]/").host == "2001:db8::1"
    for bad in ("https://-example.com/", f"https://{'a' * 64}.com/", "a..b"):
        with pytest.raises(TargetError, match="no valid host name"):
            Target.parse(bad)
