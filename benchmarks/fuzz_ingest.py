"""Benchmark: fuzz the collector's batch upload with thousands of hypothesis cases.

    .venv/bin/python benchmarks/fuzz_ingest.py [--examples 5000] [--seed N]

The same property as tests/collector/test_ingest_fuzz.py (malformed, truncated, flipped,
oversized, forged and validly signed but invalid batches, through the real app on a
temporary SQLite file): never a 5xx, always a JSON error, and no change in the database.
Prints the cases run, the statuses and reasons seen per kind of case, and the elapsed time.
Exits 1 with hypothesis's minimal failing case if the property breaks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.collector.ingest.test_fuzz import Harness


def run(harness: Harness, examples: int, rng_seed: int) -> Counter[tuple[str, int, str]]:
    seen: Counter[tuple[str, int, str]] = Counter()

    # No shrinking and no example database: a benchmark counts cases, it does not replay.
    @seed(rng_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(harness.cases)
        status, body = harness.check(case)
        reason = body.get("reason", "-") if isinstance(body, dict) else "-"
        seen[case.kind, status, reason] += 1

    fuzz()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="cases to run (5000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (0)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(Path(tmp) / "collector.db")
        started = time.perf_counter()
        try:
            seen = run(harness, args.examples, args.seed)
        except AssertionError as exc:
            print(f"property broken: {exc}", file=sys.stderr)
            return 1
        finally:
            elapsed = time.perf_counter() - started
            harness.close()
    total = sum(seen.values())
    print(f"{total} cases in {elapsed:.1f} s ({total / elapsed:.0f}/s), no 5xx, database unchanged")
    statuses = Counter[int]()
    for (_, status, _), n in seen.items():
        statuses[status] += n
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print(f"{'kind':<14}{'status':>7}  {'reason':<14}{'cases':>7}")
    for (kind, status, reason), n in sorted(seen.items()):
        print(f"{kind:<14}{status:>7}  {reason:<14}{n:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
