"""The daemon's goodput samples (agent.daemon.goodput): taken through a real collector's far
end (loopback) when due, counted against the budget, kept beside their check in the spool
until it is acknowledged, and carried in the batch as ``[ms, online, bps]``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import msgpack
import pytest

from agent.api.auth import Credential
from agent.api.control import HTTPControl
from agent.daemon.budget import DailyBudget
from agent.daemon.config import AgentConfig, CollectorConfig, LimitsConfig, ScheduleConfig
from agent.daemon.config import TestListConfig as ListConfig
from agent.daemon.goodput import META_GOODPUT_AT, Goodput, goodput_due_ms
from agent.daemon.spool import Spool
from agent.wire.batch import encode_batch
from collector.config import Settings
from collector.farend.config import FarendConfig
from tests.collector.app_client import enrolled, running


def config(url: str, tmp_path: Path, every: int = 3) -> AgentConfig:
    return AgentConfig(
        collector=CollectorConfig((url,)),
        state_dir=tmp_path,
        schedule=ScheduleConfig(connectivity_check=60.0, goodput_every=every),
        limits=LimitsConfig(goodput_bytes=64 * 1024, daily_bandwidth=10**9),
        # The far end is on loopback, which no collector may send an agent to by default.
        testlist=ListConfig(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)),
    )


@pytest.mark.asyncio
async def test_a_due_sample_goes_through_the_far_end_and_is_counted(tmp_path: Path) -> None:
    farend = FarendConfig(host="127.0.0.1", state_dir=tmp_path, tls_port=0, http_port=0, udp_port=0)
    async with running(Settings(db_url=f"sqlite:///{tmp_path}/c.db", farend=farend)) as client:
        agent_id, key = await enrolled(client)
        url = str(client.make_url("/")).rstrip("/")
        spool = Spool.open(tmp_path / "spool.db", max_bytes=10**7)
        try:
            cfg = config(url, tmp_path)
            budget = DailyBudget(cfg.limits.daily_bandwidth, spool)
            control = HTTPControl(url, credential=Credential(agent_id, key))
            goodput = Goodput(cfg, control, budget, spool)
            assert goodput_due_ms(spool, cfg) == 0  # never sampled: due at once
            now = 1_700_000_000_000
            bps = await goodput.sample(now)
            assert bps is not None
            assert bps > 0
            assert spool.get_meta(META_GOODPUT_AT) == now
            assert budget.used > 64 * 1024  # the payload and its overhead
            assert goodput_due_ms(spool, cfg) == now + int(2.5 * 60_000)
            assert await goodput.sample(now + 60_000) is None  # not due yet
        finally:
            spool.close()


@pytest.mark.asyncio
async def test_never_when_off(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool.db", max_bytes=10**7)
    try:
        assert goodput_due_ms(spool, config("http://127.0.0.1:9", tmp_path, every=0)) is None
    finally:
        spool.close()


@pytest.mark.asyncio
async def test_a_sample_leaves_the_spool_with_its_check_and_rides_in_the_batch(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    spool = Spool.open(tmp_path / "spool.db", max_bytes=10**7)
    try:
        for ms in (1000, 2000, 3000):
            spool.add_check(ms, True)
        spool.add_goodput(2000, 5_000_000)
        spool.add_goodput(9999, 1)  # no check at that time: pruned
        assert spool.goodput([1000, 2000, 3000, 9999]) == {2000: 5_000_000}
        checks = spool.peek_checks(10)
        rates = spool.goodput([ms for ms, _ in checks])
        key = Ed25519PrivateKey.generate()
        data = encode_batch("a1", 1, [], key, created_ms=4000, checks=checks, goodput=rates)
        body = msgpack.unpackb(msgpack.unpackb(data)["b"])
        assert body["c"] == [[1000, True], [2000, True, 5_000_000], [3000, True]]
        spool.ack_checks([1000, 2000])
        assert spool.goodput([2000]) == {}
    finally:
        spool.close()


@pytest.mark.asyncio
async def test_lean_mode_hands_over_only_for_samples_spaced_past_its_idle_wait(
    tmp_path: Path,
) -> None:
    from agent.daemon.goodput import lean_goodput_due_ms

    spool = Spool.open(tmp_path / "spool.db", max_bytes=10**7)
    try:
        # Every 3 checks of a minute: further apart than full mode's 2-check wait to idle.
        assert lean_goodput_due_ms(spool, config("http://127.0.0.1:9", tmp_path, every=3)) == 0
        # Every check: taken while full mode runs, never a reason to exec back.
        assert lean_goodput_due_ms(spool, config("http://127.0.0.1:9", tmp_path, every=1)) is None
    finally:
        spool.close()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("[schedule]\ngoodput_every = -1\n", "schedule.goodput_every: must be from 0"),
        ("[schedule]\ngoodput_every = 2.5\n", "schedule.goodput_every: expected an integer"),
        ('[limits]\ngoodput_bytes = "1KiB"\n', "limits.goodput_bytes: must be from 16KiB"),
        ('[limits]\ngoodput_bytes = "8MiB"\n', "limits.goodput_bytes: must be from 16KiB"),
    ],
)
def test_the_goodput_settings_are_bounded(tmp_path: Path, table: str, problem: str) -> None:
    from agent.daemon.config import ConfigError, load_config

    path = tmp_path / "agent.toml"
    path.write_text(f'[collector]\nurls = ["https://a.example/"]\n{table}')
    with pytest.raises(ConfigError, match=problem):
        load_config(path)
    settings = '[schedule]\ngoodput_every = 0\n[limits]\ngoodput_bytes = "1MiB"\n'
    path.write_text(f'[collector]\nurls = ["https://a.example/"]\n{settings}')
    config = load_config(path)
    assert (config.schedule.goodput_every, config.limits.goodput_bytes) == (0, 2**20)
