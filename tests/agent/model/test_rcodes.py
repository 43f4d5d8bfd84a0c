"""The model's rcode table is dnspython's, so the wire format did not change when the wire
stopped loading dnspython."""

from __future__ import annotations

import dns.rcode
import pytest

from agent.model.rcodes import MAX_RCODE, rcode_number, rcode_text


def _dnspython_number(text: str) -> int | None:
    # What the wire codec did with dnspython: a name that comes back the same is a number.
    try:
        code = dns.rcode.from_text(text)
    except (dns.rcode.UnknownRcode, ValueError):
        return None
    return int(code) if dns.rcode.to_text(code) == text else None


def test_every_code_has_dnspythons_name() -> None:
    for number in range(MAX_RCODE + 1):
        assert rcode_text(number) == dns.rcode.to_text(dns.rcode.Rcode.make(number))


@pytest.mark.parametrize(
    "text",
    ["NOERROR", "NXDOMAIN", "BADVERS", "BADSIG", "nxdomain", "12", "012", "4095", "4096", "",
     "FOO", "-1", "\uff11\uff12", "BADCOOKIE", "DSOTYPENI"],
)  # fmt: skip
def test_names_become_numbers_as_dnspython_had_them(text: str) -> None:
    assert rcode_number(text) == _dnspython_number(text)


def test_every_name_round_trips() -> None:
    for number in range(MAX_RCODE + 1):
        assert rcode_number(rcode_text(number)) == number
