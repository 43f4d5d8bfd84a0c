"""Agent model: DNS response codes by number and name, as the observations and the wire use them.

An observation keeps a reply's rcode as dnspython names it ("NOERROR", "NXDOMAIN", or the
number as text for one without a name); the wire stores a named or numbered one as its
number. This table is dnspython's (the IANA registry), standard library only, so the wire
format and the collector do not load dnspython to read a record; a test holds it to
dnspython's for every code.
"""

from __future__ import annotations

__all__ = ["MAX_RCODE", "rcode_number", "rcode_text"]

MAX_RCODE = 4095  # 12 bits with EDNS
_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
    16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
    22: "BADTRUNC", 23: "BADCOOKIE",
}  # fmt: skip
_NUMBERS = {name: number for number, name in _NAMES.items()}


def rcode_text(number: int) -> str:
    """The name of an rcode, or its number as text when it has none."""
    return _NAMES.get(number, str(number))


def rcode_number(text: str) -> int | None:
    """The number whose :func:`rcode_text` is exactly ``text``, or None (an alias such as
    BADSIG, a lower-case name, a number with leading zeros or out of range)."""
    number = _NUMBERS.get(text)
    if number is None and text.isascii() and text.isdigit():
        number = int(text)
        if number > MAX_RCODE or rcode_text(number) != text:
            return None
    return number
