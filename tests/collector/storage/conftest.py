"""Storage fixtures: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from NETSONDE_TEST_PG_URL, else from deploy/postgres-dev.sh (which starts
the local cluster). One throwaway database is created per session and dropped at the end;
each test starts from an empty schema, so each also runs the migrations from scratch.
Without PostgreSQL a developer gets a skip saying why; under CI (CI=true) it is a failure,
because a backend that silently skips is not tested.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from collector.storage import Storage, open_storage
from tests import REPO
from tests.collector.storage.records import AGENT


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI must run the PostgreSQL storage tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


def _admin_url() -> str:
    url = os.environ.get("NETSONDE_TEST_PG_URL")
    if url:
        return url
    script = REPO / "deploy" / "postgres-dev.sh"
    try:
        done = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"PostgreSQL: {script.name} failed: {exc}")
    if done.returncode != 0:
        _unavailable(f"PostgreSQL unavailable: {done.stderr.strip() or 'postgres-dev.sh failed'}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database, dropped after the session."""
    admin = make_url(_admin_url())
    if admin.drivername == "postgresql":
        admin = admin.set(drivername="postgresql+psycopg")
    name = f"netsonde_test_{secrets.token_hex(4)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        engine.dispose()
        _unavailable(f"PostgreSQL at {admin!r} unusable: {exc.orig}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _empty_schema(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'netsonde.db'}"
    url: str = request.getfixturevalue("pg_url")
    _empty_schema(url)
    return url


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    yield from _opened(storage_url)


@pytest.fixture
def pg_storage(pg_url: str) -> Iterator[Storage]:
    """On PostgreSQL alone, for what only PostgreSQL does."""
    _empty_schema(pg_url)
    yield from _opened(pg_url)


def _opened(url: str) -> Iterator[Storage]:
    store = open_storage(url)
    store.add_agent(AGENT, "test agent", b"\x01" * 32, 0)
    try:
        yield store
    finally:
        store.close()
