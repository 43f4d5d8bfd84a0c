"""Agent entry point: the ``netsonde-agent`` command.

Kept free of heavy imports so ``--help`` starts fast on a Raspberry Pi; each
subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys

from agent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsonde-agent",
        description="netsonde agent: measures whether and how sites are blocked on this network.",
    )
    parser.add_argument("--version", action="version", version=f"netsonde-agent {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
