#!/usr/bin/env bash
# The test suite: set up, then run pytest (lab tests need root; CI=true forbids skipping them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec .venv/bin/python -m pytest "$@"
