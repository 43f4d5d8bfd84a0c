"""Agent CLI: the targets named on the command line, as ``Target`` objects.

A target is a URL, a bare host name (tested as ``https://name/``), or ``@FILE`` naming a
Citizen Lab test list (read by ``agent.wire.testlist``). Bad input never aborts the whole
list: each bad argument becomes a problem string and the rest is still measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.model.measurement import Target, TargetError
from agent.wire.testlist import read_test_list

__all__ = ["TargetList", "parse_targets"]


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
