"""``netsonde-collector bundle`` and ``verify``, and the standalone verifier run as a court's
expert would: one file copied to an empty directory, ``python3 -I``, no netsonde around."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import collector.evidence.netsonde_verify as standalone
from collector.cli import main
from collector.evidence.key import load_or_create_key, public_key_text
from tests.collector.evidence.signed import ASN, NOW, clones, ingest_signed, signed_storage

ALLOWED_IMPORTS = {"cryptography", "msgpack", "__future__"}


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    storage = signed_storage(url)
    try:
        ingest_signed(storage, 1, clones(3))
        ingest_signed(storage, 2, clones(2), 64501)
    finally:
        storage.close()
    return url


def _bundle(db: str, out: Path, *extra: str) -> int:
    return main(["bundle", "--db", db, "--since", "0", "--until", str(NOW + 1), "--out", str(out),
                 *extra])  # fmt: skip


def test_bundle_then_verify(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "evidence.tar"
    assert _bundle(db, out, "--asn", f"AS{ASN}") == 0
    printed = capsys.readouterr().out
    assert "3 measurement(s) from 1 agent(s) in 1 signed batch(es)" in printed
    # The key was created beside the database, 0600, as serve would have.
    key_file = tmp_path / "collector-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = public_key_text(load_or_create_key(key_file))
    assert key in printed
    assert main(["verify", str(out), "--collector-key", key]) == 0
    assert "OK: 3 measurement(s)" in capsys.readouterr().out
    changed = bytearray(out.read_bytes())
    changed[700] ^= 1
    out.write_bytes(changed)
    assert main(["verify", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bad_queries_are_usage_errors(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "evidence.tar"
    assert (
        main(["bundle", "--db", db, "--since", "yesterday", "--until", "0", "--out", str(out)]) == 2
    )
    assert "since" in capsys.readouterr().err
    assert _bundle(db, out, "--asn", "ASX") == 2
    assert main(["bundle", "--db", db, "--since", "5", "--until", "5", "--out", str(out)]) == 2
    assert not out.exists()
    assert main(["verify", str(tmp_path / "missing.tar")]) == 1


def test_the_standalone_verifier_imports_only_the_standard_library_and_two_packages() -> None:
    tree = ast.parse(Path(standalone.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    outside = imported - ALLOWED_IMPORTS - set(sys.stdlib_module_names)
    assert outside == set()


def test_the_standalone_verifier_runs_alone(db: str, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.tar"
    assert _bundle(db, bundle) == 0
    expert = tmp_path / "expert"
    expert.mkdir()
    shutil.copy(standalone.__file__, expert / "netsonde_verify.py")
    shutil.copy(bundle, expert / "evidence.tar")
    # -I: no PYTHONPATH, no user site, not even the script's directory's neighbours; and
    # run from a directory holding nothing of netsonde.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", "netsonde_verify.py", *args],
            cwd=expert, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    done = run("evidence.tar")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: 5 measurement(s) from 1 agent(s) in 2 signed batch(es)" in done.stdout
    assert "compare it with the key the collector publishes" in done.stdout
    key = public_key_text(load_or_create_key(tmp_path / "collector-key.pem"))
    assert run("evidence.tar", "--collector-key", key).returncode == 0
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x80
    (expert / "evidence.tar").write_bytes(data)
    done = run("evidence.tar")
    assert done.returncode == 1
    assert "FAILED" in done.stdout
    assert run().returncode == 2
