"""Benchmark support: fills a store with N synthetic but valid measurements, fast.

    .venv/bin/python benchmarks/fill_store.py sqlite:////tmp/fill.db 1000000 [--seed 1]

The records are real wire records: the censor lab's recorded measurements (one per verdict,
tests/agent/recorded) used as templates, each given a new UUIDv7 id at its own time and a
new URL. A name the record leaves implied (DNS query, SNI, Host) follows the URL, so a
swapped URL renames the whole measurement; evidence keeps the lab's addresses. Each
(network, domain) pair gets a policy once: clean, or blocked by one technique, whose
measurements then mostly carry that verdict. Each network has one 6-hour outage: its agents'
connectivity checks say offline and their measurements are ``offline``.

Everything goes through ``Storage.add_agent`` and ``Storage.ingest`` (the collector's own
write path, in batches of ``batch`` records per agent), so foreign keys hold and the
hourly, weekly and all-time rollups are exactly what ingest would have made. Each batch is
signed as its agent signs one (agent.wire.batch: the body, the key derived from the seed)
and stored with its records, as ingest stores an uploaded batch, so every measurement can
be checked against its agent's key (``--unsigned``: without, half the disk). The same seed
gives the same store (ids included) for the same ``end_ms``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.wire.batch import MAX_CHECKS, SIGNATURE_DOMAIN
from agent.wire.batch import VERSION as BATCH_VERSION
from agent.wire.record import decode_measurement, measurement_to_obj
from collector.storage import BatchSeq, IngestRecord, Storage, open_storage
from collector.storage.schema import HOUR_MS, WEEK_MS
from tests.collector.storage.records import recorded

# Real Pakistani access networks, so the dashboard's labels look like its users' networks.
NETWORKS = (
    (17557, "PK"),
    (45595, "PK"),
    (59257, "PK"),
    (24499, "PK"),
    (9541, "PK"),
    (38193, "PK"),
    (23674, "PK"),
    (45773, "PK"),
)
BLOCKED_SHARE = 0.25  # of (network, domain) pairs blocked by some technique
BLOCK_RATE = 0.85  # of a blocked pair's measurements that show the block
NOISE = (("down", 0.02),)  # of a clean pair's measurements
OUTAGE_MS = 6 * HOUR_MS
CHECK_EVERY_MS = 10 * 60_000
# Every verdict the templates hold but these is a blocking technique.
NOT_BLOCKS = frozenset(("ok", "down", "offline", "inconclusive"))


@dataclass(frozen=True)
class Template:
    verdict: str
    scheme: str
    body: dict[str, Any]  # the wire record without id, time and URL


def templates() -> dict[str, list[Template]]:
    """The recorded measurements as templates, by verdict, each checked: a record made from
    it decodes, with its verdict, under any id and URL."""
    out: dict[str, list[Template]] = {}
    for m in recorded():
        body = measurement_to_obj(m)
        for key in ("i", "t", "u"):
            body.pop(key, None)
        scheme = m.url.split(":", 1)[0]
        template = Template(m.verdict.verdict, scheme, body)
        record = render(template, uuid7(1_700_000_000_000, random.Random(0)), "site.example")
        decoded = decode_measurement(record)
        if decoded.verdict != m.verdict or decoded.url != f"{scheme}://site.example/":
            raise AssertionError(f"template {m.url} does not survive a new id and URL")
        out.setdefault(m.verdict.verdict, []).append(template)
    return out


def wire_map(template: Template, key: bytes, domain: str) -> dict[str, Any]:
    return {"i": key, "u": f"{template.scheme}://{domain}/", **template.body}


def render(template: Template, key: bytes, domain: str) -> bytes:
    data: bytes = _PACK(wire_map(template, key, domain))
    return data


_PACK = msgpack.Packer(use_bin_type=True).pack


@dataclass
class Agent:
    id: str
    asn: int
    cc: str
    key: Ed25519PrivateKey
    records: list[IngestRecord] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # the records' wire maps
    next_check_ms: int = 0
    seq: int = 0

    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def agent_key(seed: int, index: int) -> Ed25519PrivateKey:
    secret = hashlib.sha256(f"netsonde-fill:{seed}:{index}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(secret)


def uuid7(ms: int, rng: random.Random) -> bytes:
    """A UUIDv7's 16 bytes at ``ms``, its random bits from ``rng`` (so a seed repeats it)."""
    bits = rng.getrandbits(74)
    value = ms << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0x2 << 62 | (bits & ((1 << 62) - 1))
    return value.to_bytes(16, "big")


@dataclass
class Plan:
    """What the fill will write: networks, agents, domains, each pair's policy, outages."""

    rng: random.Random
    start_ms: int
    end_ms: int
    agents: list[Agent]
    domains: list[str]
    policy: dict[tuple[int, int], str | None]  # (network index, domain index): the block
    outages: dict[int, int]  # network's ASN: outage start

    def offline(self, asn: int, ms: int) -> bool:
        start = self.outages[asn]
        return start <= ms < start + OUTAGE_MS


def make_plan(
    seed: int,
    domains: int,
    networks: int,
    agents_per_network: int,
    start_ms: int,
    end_ms: int,
    blocks: list[str],
) -> Plan:
    rng = random.Random(seed)
    nets = NETWORKS[:networks]
    agents = [
        Agent(f"ag-fill{n:02d}{i:02d}", asn, cc, agent_key(seed, n * agents_per_network + i))
        for n, (asn, cc) in enumerate(nets)
        for i in range(agents_per_network)
    ]
    names = [f"site{d:03d}.example.{('org', 'com', 'net', 'pk')[d % 4]}" for d in range(domains)]
    policy = {
        (n, d): rng.choice(blocks) if rng.random() < BLOCKED_SHARE else None
        for n in range(len(nets))
        for d in range(domains)
    }
    span = end_ms - start_ms
    outages = {asn: start_ms + rng.randrange(max(1, span - OUTAGE_MS)) for asn, _ in nets}
    return Plan(rng, start_ms, end_ms, agents, names, policy, outages)


def pick_verdict(plan: Plan, network: int, domain: int, offline: bool) -> str:
    if offline:
        return "offline"
    block = plan.policy[network, domain]
    roll = plan.rng.random()
    if block is not None:
        return block if roll < BLOCK_RATE else "ok"
    for verdict, share in NOISE:
        if roll < share:
            return verdict
        roll -= share
    return "ok"


def measurements(
    plan: Plan, n: int, by_verdict: dict[str, list[Template]]
) -> Iterator[tuple[Agent, IngestRecord, dict[str, Any]]]:
    """``n`` measurements in time order, evenly spread from start to end, each with its agent."""
    rng = plan.rng
    step = (plan.end_ms - plan.start_ms) / n
    per_network = len(plan.agents) // len(plan.outages)
    for i in range(n):
        ms = plan.start_ms + int(i * step)
        agent_index = rng.randrange(len(plan.agents))
        agent, network = plan.agents[agent_index], agent_index // per_network
        domain_index = rng.randrange(len(plan.domains))
        verdict = pick_verdict(plan, network, domain_index, plan.offline(agent.asn, ms))
        template = rng.choice(by_verdict[verdict])
        domain = plan.domains[domain_index]
        key = uuid7(ms, rng)
        obj = wire_map(template, key, domain)
        record = IngestRecord(key, ms, domain, obj["u"], verdict, _PACK(obj), len(agent.records))
        yield agent, record, obj


def agent_checks(plan: Plan, agent: Agent, until_ms: int) -> list[tuple[int, bool]]:
    """The agent's connectivity checks up to ``until_ms`` not yet handed out."""
    start = max(agent.next_check_ms, plan.start_ms)
    new = [(ms, not plan.offline(agent.asn, ms)) for ms in range(start, until_ms, CHECK_EVERY_MS)]
    if new:
        agent.next_check_ms = new[-1][0] + CHECK_EVERY_MS
    return new


def signed(agent: Agent, checks: list[tuple[int, bool]], created_ms: int) -> BatchSeq:
    """The batch as the agent would have signed it (agent.wire.batch.encode_batch's body),
    to be stored with its records as ingest stores an upload's."""
    agent.seq += 1
    body: dict[str, Any] = {
        "v": BATCH_VERSION,
        "a": agent.id,
        "s": agent.seq,
        "t": created_ms,
        "m": agent.bodies,
    }
    if checks:
        body["c"] = [[ms, online] for ms, online in checks]
    packed = _PACK(body)
    return BatchSeq(agent.seq, agent.key.sign(SIGNATURE_DOMAIN + packed), packed)


def flush(store: Storage, plan: Plan, agent: Agent, sign: bool) -> int:
    if not agent.records:
        return 0
    last = agent.records[-1].measured_ms
    checks = agent_checks(plan, agent, last + 1)
    while len(checks) > MAX_CHECKS:  # a batch carries at most this many: older go first
        store.ingest(agent.id, [], agent.asn, agent.cc, last, checks[:MAX_CHECKS])
        checks = checks[MAX_CHECKS:]
    seq = signed(agent, checks, last + 30_000) if sign else None
    received = last + 60_000
    result = store.ingest(agent.id, agent.records, agent.asn, agent.cc, received, checks, seq)
    if result.duplicates:
        raise RuntimeError(f"{len(result.duplicates)} ids already stored: fill an empty store")
    count = len(agent.records)
    agent.records, agent.bodies = [], []
    return count


def fill(
    url: str,
    n: int,
    seed: int = 1,
    *,
    domains: int = 200,
    networks: int = 6,
    agents_per_network: int = 2,
    weeks: int = 8,
    end_ms: int | None = None,
    batch: int = 1000,
    signed: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Fills the (empty) store at ``url`` with ``n`` measurements over the ``weeks`` before
    ``end_ms`` (default: now, to the hour). ``progress(done, n)`` is called after each batch."""
    if not 1 <= networks <= len(NETWORKS):
        raise ValueError(f"networks: 1 to {len(NETWORKS)}")
    end = end_ms if end_ms is not None else int(time.time() * 1000) // HOUR_MS * HOUR_MS
    by_verdict = templates()
    blocks = sorted(v for v in by_verdict if v not in NOT_BLOCKS)
    plan = make_plan(
        seed, domains, networks, agents_per_network, end - weeks * WEEK_MS, end, blocks
    )
    store = open_storage(url)
    try:
        for index, agent in enumerate(plan.agents):
            store.add_agent(
                agent.id, f"fill {agent.asn} #{index}", agent.public_key(), plan.start_ms - WEEK_MS
            )
        done = 0
        for agent, record, obj in measurements(plan, n, by_verdict):
            agent.records.append(record)
            agent.bodies.append(obj)
            if len(agent.records) >= batch:
                done += flush(store, plan, agent, signed)
                if progress is not None:
                    progress(done, n)
        for agent in plan.agents:
            done += flush(store, plan, agent, signed)
        if progress is not None:
            progress(done, n)
    finally:
        store.close()


def _progress(started: float) -> Callable[[int, int], None]:
    shown = [0.0]

    def show(done: int, n: int) -> None:
        now = time.perf_counter()
        if done == n or now - shown[0] >= 2:
            shown[0] = now
            rate = done / max(now - started, 1e-9)
            print(f"  {done:>10,} / {n:,}  ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    return show


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="sqlite:///PATH or postgresql://..., an empty store")
    parser.add_argument("n", type=int, help="how many measurements")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--domains", type=int, default=200)
    parser.add_argument("--networks", type=int, default=6)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--unsigned", action="store_true", help="store no signed batches")
    args = parser.parse_args()
    started = time.perf_counter()
    fill(
        args.url,
        args.n,
        args.seed,
        domains=args.domains,
        networks=args.networks,
        weeks=args.weeks,
        signed=not args.unsigned,
        progress=_progress(started),
    )
    elapsed = time.perf_counter() - started
    print(f"filled {args.n:,} measurements in {elapsed:.1f} s ({args.n / elapsed:,.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
