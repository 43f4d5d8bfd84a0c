"""The layers of docs/architecture.md hold, and lint-imports would catch a breach of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # The tree's own packages first on the path, whatever the installed ones are.
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "300"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "breach", "contract"),
    [
        ("agent/verdict/__init__.py", "import agent.daemon.spool", "each layer imports only"),
        ("agent/model/failures.py", "import dns.rcode", "agent.model has no third-party"),
        ("agent/wire/record.py", "import agent.net.dns", "load no network code"),
        ("agent/net/tcp.py", "import collector.storage", "agent never imports the collector"),
        ("collector/control.py", "import agent.daemon.config", "never the daemon or CLI"),
    ],
)
def test_a_breach_fails_the_check(tmp_path: Path, module: str, breach: str, contract: str) -> None:
    tree = tmp_path / "tree"
    for part in ("agent", "collector"):
        shutil.copytree(REPO / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree)
    with (tree / module).open("a", encoding="utf-8") as fh:
        fh.write(f"\n{breach}  # a deliberate breach\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
