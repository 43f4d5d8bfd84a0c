"""Collector entry point: the ``netsonde-collector`` command."""

from __future__ import annotations

import argparse
import sys

from collector import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsonde-collector",
        description="netsonde collector: control vantage point, ingest and aggregation service.",
    )
    parser.add_argument("--version", action="version", version=f"netsonde-collector {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
