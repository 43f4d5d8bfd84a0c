#!/usr/bin/env bash
# The demo: set up, bring the censor lab up, and show what netsonde sees in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec .venv/bin/python -m tests.lab demo "$@"
