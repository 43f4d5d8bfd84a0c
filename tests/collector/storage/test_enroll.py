"""Collector storage, enrolment on SQLite and PostgreSQL: one-time tokens, agents, revocation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from agent.cli.main import build_parser
from collector.storage import ExpiredToken, Storage, UnknownToken, UsedToken
from collector.storage.schema import enroll_tokens

KEY = b"\x02" * 32
NOW = 1_700_000_000_000
HOUR = 3_600_000


def test_a_token_enrols_one_agent_and_only_its_hash_is_stored(storage: Storage) -> None:
    token = storage.create_enroll_token("pk-lahore-1", HOUR, NOW)
    agent_id = storage.redeem_enroll_token(token, KEY, NOW + 1000)
    assert agent_id.startswith("ag-")
    assert len(agent_id) == 15
    row = storage.get_agent(agent_id)
    assert row is not None
    assert (row.name, row.public_key, row.created_ms) == ("pk-lahore-1", KEY, NOW + 1000)
    assert (row.revoked_ms, row.last_seq) == (None, 0)
    with storage.engine.connect() as conn:
        stored = conn.execute(select(enroll_tokens)).one()
    assert token.encode() not in bytes(stored.token_hash)
    assert len(stored.token_hash) == 32
    assert (stored.used_ms, stored.agent_id) == (NOW + 1000, agent_id)


def test_a_used_token_is_refused_and_adds_no_agent(storage: Storage) -> None:
    token = storage.create_enroll_token("a", HOUR, NOW)
    storage.redeem_enroll_token(token, KEY, NOW)
    before = storage.list_agents()
    with pytest.raises(UsedToken):
        storage.redeem_enroll_token(token, b"\x03" * 32, NOW)
    assert storage.list_agents() == before


def test_an_expired_token_is_refused(storage: Storage) -> None:
    token = storage.create_enroll_token("a", HOUR, NOW)
    before = storage.list_agents()
    with pytest.raises(ExpiredToken):
        storage.redeem_enroll_token(token, KEY, NOW + HOUR)
    assert storage.list_agents() == before


def test_an_unknown_token_is_refused(storage: Storage) -> None:
    storage.create_enroll_token("a", HOUR, NOW)
    with pytest.raises(UnknownToken):
        storage.redeem_enroll_token("not-a-token", KEY, NOW)


def test_list_and_revoke(storage: Storage) -> None:
    ids = [
        storage.redeem_enroll_token(storage.create_enroll_token(n, HOUR, NOW), KEY, NOW + i)
        for i, n in enumerate(["one", "two"])
    ]
    listed = storage.list_agents()
    # The fixture's own agent (created at 0) comes first: listed by creation time.
    assert [a.id for a in listed][-2:] == ids
    assert [a.name for a in listed][-2:] == ["one", "two"]
    assert storage.revoke_agent(ids[0], NOW + 5)
    assert storage.revoke_agent(ids[0], NOW + 9)  # again: still revoked, first time kept
    revoked = storage.get_agent(ids[0])
    assert revoked is not None
    assert revoked.revoked_ms == NOW + 5
    other = storage.get_agent(ids[1])
    assert other is not None
    assert other.revoked_ms is None
    assert not storage.revoke_agent("ag-000000000000", NOW)
    assert storage.get_agent("ag-000000000000") is None


def test_tokens_go_through_the_agents_command_line(storage: Storage) -> None:
    # A token starting with "-" would be read as an option by `enroll --token TOKEN`.
    parser = build_parser()
    for _ in range(300):
        token = storage.create_enroll_token("any", HOUR, NOW)
        assert len(token) == 32
        args = parser.parse_args(["enroll", "--collector", "https://c.example", "--token", token])
        assert args.token == token
