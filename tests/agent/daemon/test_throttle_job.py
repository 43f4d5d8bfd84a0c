"""The daemon's ``throttle`` job (``agent.daemon.throttle``): its ``[throttle]`` settings, which
targets it takes (local lists' categories, the collector's flagged URLs, never the agent's LAN
on the collector's say-so, a bounded number a run, in turn), and a run through a real
collector and far end on loopback that spools its results within the daily budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.api.auth import Credential
from agent.api.control import HTTPControl
from agent.daemon.budget import DailyBudget
from agent.daemon.config import ConfigError, load_config
from agent.daemon.disk import Disk
from agent.daemon.spool import Spool
from agent.daemon.throttle import META_THROTTLE_AT, ThrottleRuns, throttle_targets
from agent.model.farend import FarendTicket
from agent.wire.record import decode_measurement
from collector.config import Settings
from collector.farend.config import FarendConfig
from tests.collector.app_client import enrolled, running

LIST = """url,category_code,category_description,date_added,source,notes
https://social.example/,GRP,Social Networking,2024-01-01,x,
https://news.example/,NEWS,News Media,2024-01-01,x,
http://chat.example/,COMT,Communication Tools,2024-01-01,x,
https://vpn.example/,ANON,Anonymization,2024-01-01,x,
"""


def config_file(tmp_path: Path, throttle: str = "") -> Path:
    (tmp_path / "list.csv").write_text(LIST)
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "state"\n[collector]\nurls = ["http://127.0.0.1:1/"]\n'
        f'[testlist]\nfiles = ["list.csv"]\nfrom_collector = false\n'
        f'allow_networks = ["127.0.0.0/8"]\n[throttle]\n{throttle}'
    )
    return path


def ticket(*targets: str) -> FarendTicket:
    return FarendTicket("127.0.0.1", 1, 2, 3, "t", 2**40, targets)


def test_the_throttle_table_and_its_defaults(tmp_path: Path) -> None:
    defaults = load_config(config_file(tmp_path)).throttle
    assert (defaults.enabled, defaults.interval, defaults.max_targets) == (True, 86400.0, 10)
    assert defaults.categories == ("GRP", "COMT", "ANON")
    chosen = load_config(
        config_file(tmp_path, 'interval = "6h"\ncategories = ["mmed"]\nmax_targets = 3\n')
    ).throttle
    assert (chosen.interval, chosen.categories, chosen.max_targets) == (21600.0, ("MMED",), 3)
    for bad in ("max_targets = 0\n", 'categories = ["not a code"]\n', "enabled = 1\n"):
        with pytest.raises(ConfigError, match="throttle"):
            load_config(config_file(tmp_path, bad))


def test_targets_are_the_lists_categories_and_the_collectors_flags(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, "from_collector = true\n"))
    flagged = ticket(
        "https://x.com/", "https://social.example/", "https://10.0.0.1/", "https://127.0.0.9/"
    )
    urls = [t.url for t in throttle_targets(config, flagged)]
    # The LAN address is the collector's say-so, refused; loopback is allowed by this config.
    assert urls == [
        "https://social.example/",
        "http://chat.example/",
        "https://vpn.example/",
        "https://x.com/",
        "https://127.0.0.9/",
    ]
    alone = load_config(config_file(tmp_path, "from_collector = false\n"))
    assert len(throttle_targets(alone, flagged)) == 3
    assert len(throttle_targets(config, "farend_http_404")) == 3


@pytest.mark.asyncio
async def test_a_run_tests_its_share_and_spools_each_result(tmp_path: Path) -> None:
    farend = FarendConfig(
        host="127.0.0.1", state_dir=tmp_path, tls_port=0, http_port=0, udp_port=0,
        targets=("https://social.example/", "http://chat.example/", "https://vpn.example/"),
    )  # fmt: skip
    settings = Settings(db_url=f"sqlite:///{tmp_path}/c.db", farend=farend)
    async with running(settings) as client:
        agent_id, key = await enrolled(client)
        config = load_config(
            config_file(tmp_path, "from_collector = true\nmax_targets = 2\ncategories = []\n")
        )
        config.state_dir.mkdir()
        control = HTTPControl(str(client.make_url("/")), credential=Credential(agent_id, key))
        with Spool.open(tmp_path / "spool.db", max_bytes=10**8) as spool:
            budget = DailyBudget(None, spool)
            runs = ThrottleRuns(config, control, budget, spool, Disk(config.state_dir))
            await runs.run()
            records = [decode_measurement(r.record) for r in spool.peek(10)]
            assert {m.url for m in records} == {"https://social.example/", "http://chat.example/"}
            assert all(m.throttle is not None for m in records)
            assert {m.verdict.verdict for m in records} <= {"ok", "inconclusive"}
            assert budget.used >= sum(t.bytes for m in records for t in m.throttle.transfers)
            assert isinstance(spool.get_meta(META_THROTTLE_AT), int)
            # A budget that cannot hold one more test stops the next run before it starts.
            spent = ThrottleRuns(config, control, DailyBudget(1000, spool), spool, Disk(tmp_path))
            await spent.run()
            assert len(spool.peek(10)) == 2
