"""Agent wire: Citizen Lab test lists, read into ``Target`` objects.

A test list is CSV: ``url,category_code,category_description,date_added,source,notes``. The
command line (``@FILE``), the daemon's local lists and the collector's ``/api/v1/testlist``
all read it here. Nothing here touches the network. A bad row never aborts the whole list:
it becomes a problem string (``file:line: reason``) and the rest is still measured.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Collection
from pathlib import Path

from agent.model.measurement import Target, TargetError

__all__ = ["CATEGORY_COLUMN", "URL_COLUMN", "in_categories", "read_test_list"]

URL_COLUMN = "url"
CATEGORY_COLUMN = "category_code"


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


def in_categories(text: str, categories: Collection[str]) -> list[Target]:
    """The targets of a test list's rows whose ``category_code`` is one of ``categories``
    (``GRP``, ``COMT``, ...; any case), in file order; rows that are not URLs are skipped, as
    :func:`read_test_list` reports them already."""
    wanted = {code.strip().upper() for code in categories}
    found: list[Target] = []
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            named = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
            url, code = named.get(URL_COLUMN), named.get(CATEGORY_COLUMN)
            if not isinstance(url, str) or not isinstance(code, str) or "://" not in url:
                continue
            if code.strip().upper() in wanted:
                with contextlib.suppress(TargetError):
                    found.append(Target.parse(url))
    except csv.Error:
        pass  # the rows before the bad one stand, as in read_test_list
    return found
