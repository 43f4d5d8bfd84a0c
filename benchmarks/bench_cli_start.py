"""Benchmark: the cold start of `netsonde-agent --help`, and what it imports.

    .venv/bin/python benchmarks/bench_cli_start.py [--runs 20] [--warmups 2] [--script PATH]

Runs the console script `netsonde-agent --help` (by default the checkout's
.venv/bin/netsonde-agent) and, for reference, `python -c pass` with the interpreter named
in the script's first line, each in a new process: --warmups times unmeasured, then --runs
times, the two alternating, and prints the min, median and max wall time of each. The
difference of the medians is netsonde's share. The target is under 0.1 s for `--help`.

Then, in a fresh interpreter, what `--help` loads that a bare one has not: netsonde's own
modules, the standard library's, and third-party ones, which should be none (aiohttp,
dnspython, msgpack, rich and cryptography load only when a command runs), and how long
`import agent.cli.main` takes by `-X importtime`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWN = {"agent", "collector"}
# Prints the top-level names in sys.modules, after running --help when asked to.
MODULES = """
import contextlib, io, json, sys
if sys.argv[1:] == ["--help"]:
    from agent.cli.main import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["--help"])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def interpreter_of(script: Path) -> str:
    """The interpreter a console script runs with: its #! line."""
    first = script.read_text().splitlines()[0]
    if not first.startswith("#!"):
        raise SystemExit(f"{script}: no #! line")
    return first[2:].strip()


def wall_times(commands: list[list[str]], runs: int, warmups: int) -> list[list[float]]:
    """Seconds per run of each command; runs alternate between the commands."""
    times: list[list[float]] = [[] for _ in commands]
    for run in range(warmups + runs):
        for command, seen in zip(commands, times, strict=True):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True, cwd="/")
            if run >= warmups:
                seen.append(time.perf_counter() - started)
    return times


def top_level_modules(python: str, *args: str) -> set[str]:
    # From / so that the checkout's directories cannot shadow anything: the installed
    # netsonde is what the console script would import.
    done = subprocess.run(
        [python, "-c", MODULES, *args], capture_output=True, text=True, check=True, cwd="/"
    )
    return set(json.loads(done.stdout))


def stdlib_names(python: str) -> set[str]:
    done = subprocess.run(
        [python, "-c", "import json, sys; print(json.dumps(sorted(sys.stdlib_module_names)))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout))


def top_level_imports(command: list[str]) -> dict[str, int]:
    """Cumulative microseconds of each import made at top level (not from inside another
    import) while ``command`` (an interpreter and its arguments) runs, by ``-X importtime``."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True, cwd="/",
    )  # fmt: skip
    imports = {}
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header
        if fields[2].startswith(" ") and not fields[2].startswith("  "):
            imports[fields[2].strip()] = int(fields[1])
    return imports


def row(label: str, seconds: list[float], note: str = "") -> str:
    low, mid, high = min(seconds), statistics.median(seconds), max(seconds)
    return f"{label:<24}{low * 1000:>8.1f}{mid * 1000:>9.1f}{high * 1000:>8.1f}  {note}".rstrip()


def names(label: str, items: list[str]) -> str:
    return textwrap.fill(
        f"  {label:<20}{', '.join(items) or 'none'}", width=100, subsequent_indent=" " * 22
    )


def report_times(script: Path, python: str, runs: int, warmups: int) -> None:
    help_times, bare_times = wall_times(
        [[str(script), "--help"], [python, "-c", "pass"]], runs, warmups
    )
    print(f"{'wall time (ms)':<24}{'min':>8}{'median':>9}{'max':>8}")
    print(row("netsonde-agent --help", help_times, "(target < 100)"))
    print(row("python -c pass", bare_times))
    share = statistics.median(help_times) - statistics.median(bare_times)
    print(f"{'netsonde share':<24}{'':>8}{share * 1000:>9.1f}  (difference of the medians)")


def report_modules(script: Path, python: str) -> list[str]:
    """Prints what --help loads beyond a bare interpreter; the third-party modules among them."""
    bare = top_level_modules(python)
    loaded = top_level_modules(python, "--help") - bare
    stdlib = stdlib_names(python)
    third_party = sorted(loaded - stdlib - OWN)
    print(f"\ntop-level modules --help loads beyond a bare interpreter: {len(loaded)}")
    print(names("netsonde:", sorted(loaded & OWN)))
    print(names("standard library:", sorted((loaded & stdlib) - OWN)))
    print(names("third party:", third_party))
    pth = sorted(bare - stdlib - {"__main__"})
    print(names("bare, from .pth:", pth))

    baseline = top_level_imports([python, "-c", "pass"])
    imports = top_level_imports([python, str(script), "--help"])
    slowest = sorted(
        ((us, name) for name, us in imports.items() if name not in baseline), reverse=True
    )
    print("\nimports made by --help (-X importtime, cumulative ms, top level, the slowest 6):")
    print("  " + ", ".join(f"{name} {us / 1000:.1f}" for us, name in slowest[:6]))
    return third_party


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--script", type=Path, default=REPO / ".venv" / "bin" / "netsonde-agent")
    args = parser.parse_args()
    python = interpreter_of(args.script)
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"{args.script} --help, Python {version} ({python})")
    print(f"{args.runs} runs of each after {args.warmups} warm-ups, alternating\n")
    report_times(args.script, python, args.runs, args.warmups)
    third_party = report_modules(args.script, python)
    return 1 if third_party else 0


if __name__ == "__main__":
    sys.exit(main())
