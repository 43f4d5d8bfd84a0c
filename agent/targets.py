"""Agent daemon side, targets: turn command-line targets and test lists into ``Target`` objects.

A target is a URL, a bare host name (tested as ``https://name/``), or ``@FILE`` naming a
Citizen Lab test list (CSV: ``url,category_code,category_description,date_added,source,notes``).
Nothing here touches the network. Bad input never aborts the whole list: each bad argument or
row becomes a problem string (``file:line: reason`` for rows) and the rest is still measured.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.measurement import Target, TargetError

__all__ = ["TargetList", "parse_targets", "read_test_list"]

URL_COLUMN = "url"


@dataclass
class TargetList:
    targets: list[Target] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0  # targets dropped because an earlier one had the same URL

    def add(self, target: Target, seen: set[str]) -> None:
        # Keyed on the normalised URL so "http://www.kproxy.com./" and "http://www.kproxy.com/"
        # are measured once.
        if target.url in seen:
            self.duplicates += 1
            return
        seen.add(target.url)
        self.targets.append(target)


def parse_targets(arguments: Iterable[str]) -> TargetList:
    """Every target named on the command line, in order, de-duplicated across files too."""
    result = TargetList()
    seen: set[str] = set()
    for argument in arguments:
        if argument.startswith("@"):
            name = argument[1:]
            if not name:
                result.problems.append("'@' must be followed by a test list file name")
                continue
            targets, problems = read_test_list(Path(name))
            result.problems.extend(problems)
            for target in targets:
                result.add(target, seen)
            continue
        try:
            result.add(Target.parse(argument), seen)
        except TargetError as exc:
            result.problems.append(str(exc))
    return result


def read_test_list(path: Path) -> tuple[list[Target], list[str]]:
    """The targets of one Citizen Lab CSV, and a ``file:line: reason`` for each skipped row.

    A file that cannot be read at all yields one problem naming it, and no targets.
    """
    try:
        # utf-8-sig: lists saved by spreadsheet programs often start with a BOM, which would
        # otherwise become part of the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read test list: {_reason(exc)}"]
    return _parse_csv(path, text)


def _parse_csv(path: Path, text: str) -> tuple[list[Target], list[str]]:
    targets: list[Target] = []
    problems: list[str] = []
    # newline="" keeps \r\n inside quoted fields intact, as the csv module expects.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return [], [f"{path}: empty test list"]
        columns = [name.strip().lower() for name in header]
        if URL_COLUMN not in columns:
            return [], [
                f"{path}:1: no {URL_COLUMN!r} column in the header "
                "(a Citizen Lab test list starts with url,category_code,...)"
            ]
        index = columns.index(URL_COLUMN)
        start = reader.line_num + 1
        for row in reader:
            # A quoted field may span lines; report the line where the record starts.
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            problem = _row_problem(row, index)
            if problem is not None:
                problems.append(f"{path}:{line}: {problem}")
                continue
            try:
                targets.append(Target.parse(row[index]))
            except TargetError as exc:
                problems.append(f"{path}:{line}: {exc}")
    except csv.Error as exc:
        # The csv module cannot resynchronise after a framing error; keep what came before.
        problems.append(f"{path}:{reader.line_num}: unreadable CSV, rest of file skipped: {exc}")
    return targets, problems


def _row_problem(row: list[str], index: int) -> str | None:
    if index >= len(row) or not row[index].strip():
        return f"missing {URL_COLUMN}"
    # In a test list the column is a URL: a bare word is more likely a shifted column than a
    # host name, so it is not promoted to https:// as it would be on the command line.
    if "://" not in row[index]:
        return f"{row[index].strip()!r} is not a URL (no scheme)"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
