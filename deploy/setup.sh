#!/usr/bin/env bash
# One-time (and idempotent) setup on Debian: the system packages the censor lab
# uses, and a virtualenv in .venv with netsonde and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-pip iproute2 iptables dnsmasq-base procps ca-certificates postgresql systemd chromium chromium-driver)  # systemd: systemd-analyze and systemctl, for tests/deploy; chromium: tests/browser

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
elif [ "$(id -u)" -ne 0 ]; then
    echo "setup: not root, so not installing system packages (${APT_PACKAGES[*]})" >&2
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: netsonde needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

# Reinstall only when the declared dependencies change.
stamp=".venv/.netsonde-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing netsonde and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.netsonde-installed-*
    touch "$stamp"
fi
