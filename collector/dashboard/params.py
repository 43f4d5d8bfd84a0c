"""Collector dashboard: the pages' query parameters, checked as strictly as the API's.

A page takes a few of: ``days`` (one of ``collector.dashboard.views.DAYS``), ``page``,
``show`` (``blocked`` or ``all``), and the API's ``domain``, ``asn`` and ``cc``, parsed by
``collector.web.params``. Anything else, anything repeated or too long is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from multidict import MultiMapping

from collector.dashboard.views import DAYS
from collector.web.params import MAX_LENGTH, BadParam, parse_filters

__all__ = ["DEFAULT_DAYS", "read_params"]

DEFAULT_DAYS = 7
_OWN_LENGTH = {"days": 2, "page": 6, "show": 7}
_SHOW = ("blocked", "all")


def read_params(query: MultiMapping[str], allowed: frozenset[str]) -> dict[str, Any]:
    """The parameters of ``allowed`` that were given, parsed: ``days`` (default 7), ``page``
    (default 1), ``blocked_only`` (from ``show``), and the API's filters as keywords."""
    seen: dict[str, str] = {}
    for name, value in query.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadParam(f"unknown parameter {name[:40]!r}; allowed: {known}")
        if name in seen:
            raise BadParam(f"{name!r} is given more than once")
        limit = _OWN_LENGTH.get(name) or MAX_LENGTH[name]
        if len(value) > limit:
            raise BadParam(f"{name!r} is too long: at most {limit} characters")
        if value:
            seen[name] = value
    out: dict[str, Any] = parse_filters({k: v for k, v in seen.items() if k in MAX_LENGTH})
    days = seen.get("days", str(DEFAULT_DAYS))
    if days not in {str(d) for d in DAYS}:
        raise BadParam(f"'days' must be one of {', '.join(map(str, DAYS))}")
    out["days"] = int(days)
    page = seen.get("page", "1")
    if not page.isascii() or not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise BadParam("'page' must be a page number")
    out["page"] = int(page)
    show = seen.get("show", "blocked")
    if show not in _SHOW:
        raise BadParam("'show' must be 'blocked' or 'all'")
    out["blocked_only"] = show == "blocked"
    return out
