#!/usr/bin/env bash
# Installs the netsonde agent as a systemd service on Debian, Ubuntu or Raspberry Pi OS
# (amd64, arm64, armhf). Run as root from a netsonde checkout; safe to run again (it
# upgrades netsonde and keeps the configuration and the enrolment).
set -euo pipefail

PROG=install-agent.sh
# shellcheck source=deploy/install-common.sh
. "$(dirname "$0")/install-common.sh"

AGENT_USER=netsonde
STATE_DIR=/var/lib/netsonde  # agent.daemon.config.DEFAULT_STATE_DIR, the unit's StateDirectory=
CONFIG=$ETC_DIR/agent.toml
UNIT=netsonde-agent.service
COLLECTOR=${NETSONDE_COLLECTOR:-}
TOKEN=${NETSONDE_TOKEN:-}
TOKEN_FILE=

usage() {
    cat <<EOF
usage: sudo bash deploy/install-agent.sh --collector URL --token-file PATH [options]
       echo TOKEN | sudo bash deploy/install-agent.sh --collector URL --token-file -

Installs the netsonde agent: the system user $AGENT_USER, a virtualenv in $VENV_DIR,
$CONFIG (from deploy/agent.toml; an existing one is never overwritten), the
systemd unit $UNIT_DIR/$UNIT, the enrolment with the collector, and starts the service.

  --collector URL   collector base URL, written into a new $CONFIG
                    (env NETSONDE_COLLECTOR; needed unless the file exists)
  --token-file PATH file holding the one-time enrolment token from
                    'netsonde-collector enroll'; - reads it from standard input
                    (env NETSONDE_TOKEN holds the token itself; without either the
                    agent is installed but not enrolled or started). The token never
                    goes on a command line, where other users could read it (ps)
  --token TOKEN     the token itself: still accepted, but visible to other users
                    while this script runs; prefer --token-file
  --package SPEC    what pip installs (env NETSONDE_PACKAGE), for example
                    netsonde==0.1.0 or a wheel file; default: this checkout
  --root DIR        install under DIR instead of / (env NETSONDE_ROOT), for tests and
                    images: the unit is enabled there, nothing is started
  --no-systemd      do not enable or start the service (done anyway when systemd is
                    not running)
  -h, --help        this help

Environment for odd setups: PYTHON (default /usr/bin/python3).
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --collector) need_value "$1" $#; COLLECTOR=$2; shift 2 ;;
        --collector=*) COLLECTOR=${1#*=}; shift ;;
        --token) need_value "$1" $#; TOKEN=$2; TOKEN_ARG=1; shift 2 ;;
        --token=*) TOKEN=${1#*=}; TOKEN_ARG=1; shift ;;
        --token-file) need_value "$1" $#; TOKEN_FILE=$2; shift 2 ;;
        --token-file=*) TOKEN_FILE=${1#*=}; shift ;;
        --package) need_value "$1" $#; PACKAGE=$2; shift 2 ;;
        --package=*) PACKAGE=${1#*=}; shift ;;
        --root) need_value "$1" $#; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --no-systemd) NO_SYSTEMD=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done

if [ "${TOKEN_ARG:-0}" -eq 1 ]; then
    [ -z "$TOKEN_FILE" ] || usage_error "--token and --token-file: give one of them"
    warn "--token puts the token where other users can read it (ps, /proc) while this script runs; use --token-file PATH, or --token-file - to read it from standard input"
fi
if [ -n "$TOKEN_FILE" ]; then
    read_token "$TOKEN_FILE"
fi

# Everything is checked before anything is changed.
step "checking the system"
check_root_option
check_system
check_python
if [ -n "$COLLECTOR" ]; then
    check_http_url --collector "$COLLECTOR"
    COLLECTOR=${COLLECTOR%/}
elif [ ! -e "$ROOT$CONFIG" ]; then
    usage_error "--collector URL is needed: there is no $ROOT$CONFIG yet"
fi
if [ -n "$TOKEN" ] && [[ ! $TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
    usage_error "the token is not an enrolment token (letters, digits and ._~+/=- only)"
fi
[ -f "$REPO_DIR/deploy/agent.toml" ] || die "$REPO_DIR/deploy/agent.toml is missing: run this script from a netsonde checkout"
[ -n "$ROOT" ] && info "installing under $ROOT"

# Last of the checks, first of the changes: what pip needs to build on armhf. Nothing else
# (user, directories, virtualenv) is made until it is there.
step "build tools"
ensure_build_deps

step "system user $AGENT_USER"
ensure_user "$AGENT_USER" "$STATE_DIR" "netsonde agent"

step "directories"
ensure_dir 0755 root:root "$ROOT$ETC_DIR"
# The unit's StateDirectoryMode= is 0700 too; created here so enrolment can run first.
ensure_dir 0700 "$AGENT_USER:$AGENT_USER" "$ROOT$STATE_DIR"
info "$ETC_DIR, $STATE_DIR"

step "netsonde in $VENV_DIR"
install_venv

step "configuration $CONFIG"
if [ -e "$ROOT$CONFIG" ]; then
    info "$CONFIG exists: kept as it is"
    if [ -n "$COLLECTOR" ] && ! grep -qF "\"$COLLECTOR\"" "$ROOT$CONFIG"; then
        warn "--collector $COLLECTOR is not in the existing $CONFIG; edit collector.urls there if it should be"
    fi
else
    new=$(mktemp)
    TEMP_PATHS+=("$new")
    # Only the one uncommented example line changes; the comments stay for the operator.
    url=${COLLECTOR//&/\\&}  # & is "the match" in sed's replacement
    url=${url//|/\\|}
    sed "s|^urls = \\[\"https://collector.example.org\"\\]\$|urls = [\"$url\"]|" \
        "$REPO_DIR/deploy/agent.toml" >"$new"
    grep -qxF "urls = [\"$COLLECTOR\"]" "$new" \
        || { die "deploy/agent.toml has no 'urls = [\"https://collector.example.org\"]' line to fill in"; }
    # Readable by the agent, writable by root only: the agent must not rewrite its own limits.
    install -m 0640 -o root -g "$AGENT_USER" "$new" "$ROOT$CONFIG"
    info "wrote $CONFIG with collector $COLLECTOR"
fi
as_user "$AGENT_USER" test -r "$ROOT$CONFIG" \
    || die "$CONFIG is not readable by $AGENT_USER; fix with: chgrp $AGENT_USER $CONFIG && chmod 0640 $CONFIG"
# The agent's own check, as the agent will run it; prints the state directory it names.
config_state=$(as_user "$AGENT_USER" "$ROOT$VENV_DIR/bin/python" -c '
import sys
from agent.daemon.config import ConfigError, load_config
from pathlib import Path
try:
    print(load_config(Path(sys.argv[1])).state_dir)
except ConfigError as exc:
    sys.exit(f"{exc}")
' "$ROOT$CONFIG") || die "$CONFIG is not valid (see above)"
if [ "$config_state" != "$STATE_DIR" ]; then
    warn "$CONFIG sets state_dir = $config_state; the unit only lets the agent write $STATE_DIR (add ReadWritePaths=$config_state with 'systemctl edit ${UNIT%.service}')"
fi
info "configuration is valid"

step "systemd unit"
install_unit "$UNIT"

step "enrolment"
# Under --root the state directory is the one inside it, whatever the file says.
state=$config_state
[ -z "$ROOT" ] || state=$ROOT$STATE_DIR
enrolled=0
if [ -f "$state/agent.json" ]; then
    info "already enrolled ($(sed -n 's/.*"agent_id": *"\([^"]*\)".*/\1/p' "$state/agent.json" | head -n 1)); the token is not used again"
    enrolled=1
elif [ -n "$TOKEN" ]; then
    enroll=("$ROOT$VENV_DIR/bin/netsonde-agent" enroll --token-file - --config "$ROOT$CONFIG" --state-dir "$state")
    [ -z "$COLLECTOR" ] || enroll+=(--collector "$COLLECTOR")
    # On standard input: printf is a shell builtin, so the token is in no process's argv.
    printf '%s\n' "$TOKEN" | as_user "$AGENT_USER" "${enroll[@]}" \
        || die "enrolment failed (see above); fix it and run this script again with a fresh token"
    enrolled=1
else
    warn "no token: the agent is not enrolled, so it is not started. Get a token on the collector with 'netsonde-collector enroll --name NAME', save it in a file, then run this script again with --token-file FILE"
fi

step "service"
if [ "$enrolled" -eq 1 ]; then
    systemd_enable "$UNIT" 1
else
    # Enabled but not enrolled, it would fail at every boot.
    info "not enabling $UNIT until the agent is enrolled"
fi

step "done"
info "configuration: $CONFIG (then: systemctl restart ${UNIT%.service})"
info "state:         runuser -u $AGENT_USER -- $VENV_DIR/bin/netsonde-agent status"
info "logs:          journalctl -u ${UNIT%.service}"
