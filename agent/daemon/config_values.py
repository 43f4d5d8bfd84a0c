"""Agent daemon: the configuration file's values, read and checked one TOML table at a time.

Durations (``"90s"``, ``"6h"``), sizes (``"50MB"``, ``"1GiB"``), typed keys and bounded
numbers, each failing with :class:`ConfigError` naming the file and the dotted key.
``agent.daemon.config`` says which tables and keys exist and builds the configuration from
them. Standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeVar

__all__ = ["ConfigError", "Table", "bounded", "parse_duration", "parse_size", "type_name"]

T = TypeVar("T")

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern}\s*)+")
# kB/MB are decimal (what a mobile operator bills), KiB/MiB binary; the case of k/m/g is not
# worth refusing a file over, but the "i" decides.
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
_TOML_TYPES |= {list: "an array", dict: "a table"}


class ConfigError(ValueError):
    """The configuration cannot work; the message names the file, the key and the problem."""


def parse_duration(value: object) -> float:
    """Seconds from ``"90s"``, ``"30m"``, ``"6h"``, ``"1h30m"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.fullmatch(text := value.strip().lower()):
        parts = _DURATION_PART.findall(text)
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    else:
        raise ValueError(f'{value!r} is not a duration (e.g. "90s", "30m", "6h", or seconds)')
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r}: must be more than zero")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from ``"50MB"`` (decimal), ``"1GiB"`` (binary) or a whole number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip().lower())):
        number, unit = match.groups()
        if unit in _SIZE_UNITS:
            return round(float(number) * _SIZE_UNITS[unit])
    raise ValueError(f'{value!r} is not a size (e.g. "50MB", "1GiB", or bytes)')


@dataclass(frozen=True)
class Table:
    """One TOML table, with the file and dotted prefix every message must name."""

    source: str
    name: str
    data: Mapping[str, object]

    def key(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.name}[{key}]"
        return f"{self.name}.{key}" if self.name else key

    def fail(self, key: str | int, problem: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.key(key)}: {problem}")

    def typed(self, key: str, kind: type[T], default: T) -> T:
        value = self.data.get(key, default)
        # bool is an int to Python, but `concurrency = true` is a mistake, not 1.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = _TOML_TYPES.get(kind, kind.__name__)
            self.fail(key, f"expected {expected}, got {type_name(value)}")
        return value

    def strings(self, key: str) -> tuple[Table, list[str]]:
        items = self.typed(key, list, [])
        array = Table(self.source, self.key(key), {})
        for i, item in enumerate(items):
            if not isinstance(item, str):
                array.fail(i, f"expected a string, got {type_name(item)}")
        return array, items

    def convert(self, key: str, parse: Callable[[object], T], default: T) -> T:
        if key not in self.data:
            return default
        try:
            return parse(self.data[key])
        except ValueError as exc:
            self.fail(key, str(exc))


def type_name(value: object) -> str:
    return _TOML_TYPES.get(type(value), type(value).__name__)


def bounded(table: Table, key: str, default: int, high: int) -> int:
    value = table.typed(key, int, default)
    if not 1 <= value <= high:
        table.fail(key, f"must be from 1 to {high}, not {value}")
    return value
