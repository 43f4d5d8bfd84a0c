#!/usr/bin/env bash
# Installs the netsonde collector as a systemd service on Debian or Ubuntu: SQLite by
# default, PostgreSQL with --postgres. Run as root from a netsonde checkout; safe to run
# again (it upgrades netsonde and keeps the options file and the database).
set -euo pipefail

PROG=install-collector.sh
# shellcheck source=deploy/install-common.sh
. "$(dirname "$0")/install-common.sh"

COLLECTOR_USER=netsonde-collector
STATE_DIR=/var/lib/netsonde-collector  # the unit's StateDirectory=
ENV_FILE=$ETC_DIR/collector.env
UNIT=netsonde-collector.service
SQLITE_DB=sqlite:///$STATE_DIR/netsonde.db
LISTEN=${NETSONDE_LISTEN:-}
POSTGRES=${NETSONDE_POSTGRES:-}

usage() {
    cat <<EOF
usage: sudo bash deploy/install-collector.sh [--postgres URL] [options]

Installs the netsonde collector: the system user $COLLECTOR_USER, a virtualenv in
$VENV_DIR, its options in $ENV_FILE (an existing one is never
overwritten), the database (SQLite in $STATE_DIR unless --postgres), the
systemd unit $UNIT_DIR/$UNIT, and starts the service. Put a TLS reverse proxy in
front of it: deploy/nginx-netsonde.conf.

  --postgres URL    store in PostgreSQL, for example
                    postgresql://netsonde:PASSWORD@localhost/netsonde (env NETSONDE_POSTGRES)
  --listen H:P      address to serve on (env NETSONDE_LISTEN; default 127.0.0.1:8080,
                    for a reverse proxy on this host)
  --package SPEC    what pip installs (env NETSONDE_PACKAGE), for example
                    'netsonde[collector]==0.1.0' or a wheel file with that extra;
                    default: this checkout, with the collector extra
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
        --postgres) need_value "$1" $#; POSTGRES=$2; shift 2 ;;
        --postgres=*) POSTGRES=${1#*=}; shift ;;
        --listen) need_value "$1" $#; LISTEN=$2; shift 2 ;;
        --listen=*) LISTEN=${1#*=}; shift ;;
        --package) need_value "$1" $#; PACKAGE=$2; shift 2 ;;
        --package=*) PACKAGE=${1#*=}; shift ;;
        --root) need_value "$1" $#; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#*=}; shift ;;
        --no-systemd) NO_SYSTEMD=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
done

step "checking the system"
check_root_option
check_system
check_python
if [ -n "$POSTGRES" ]; then
    # Single-quoted in the options file, so no quotes, backslashes or white space in it.
    [[ $POSTGRES =~ ^postgres(ql)?(\+[a-z0-9]+)?://[^[:space:]\'\"\\]+$ ]] \
        || usage_error "--postgres: expected postgresql://USER:PASSWORD@HOST[:PORT]/DB (no quotes or spaces)"
fi
if [ -n "$LISTEN" ] && [[ ! $LISTEN =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$ ]]; then
    usage_error "--listen $LISTEN: expected HOST:PORT, IPv6 as [ADDR]:PORT"
fi
[ -n "$ROOT" ] && info "installing under $ROOT"

step "system user $COLLECTOR_USER"
ensure_user "$COLLECTOR_USER" "$STATE_DIR" "netsonde collector"

step "directories"
ensure_dir 0755 root:root "$ROOT$ETC_DIR"
ensure_dir 0750 "$COLLECTOR_USER:$COLLECTOR_USER" "$ROOT$STATE_DIR"
info "$ETC_DIR, $STATE_DIR"

step "netsonde in $VENV_DIR"
EXTRAS=collector install_venv

step "options $ENV_FILE"
if [ -e "$ROOT$ENV_FILE" ]; then
    info "$ENV_FILE exists: kept as it is"
    [ -z "$POSTGRES$LISTEN" ] || warn "--postgres/--listen do not change an existing $ENV_FILE; edit it instead"
else
    new=$(mktemp)
    TEMP_PATHS+=("$new")
    cat >"$new" <<EOF
# netsonde-collector options, read by $UNIT (EnvironmentFile=); after a change:
# systemctl restart ${UNIT%.service}. Written by deploy/install-collector.sh, which never
# overwrites it. Values as in 'netsonde-collector serve --help'.

# Where it serves plain HTTP: loopback, behind the TLS reverse proxy
# (deploy/nginx-netsonde.conf).
NETSONDE_LISTEN=${LISTEN:-127.0.0.1:8080}

# sqlite:////ABSOLUTE/PATH (four slashes) or postgresql://USER:PASSWORD@HOST/DB.
# This file is readable by root and $COLLECTOR_USER only, as it may hold a password.
NETSONDE_DB='${POSTGRES:-$SQLITE_DB}'

# Further options, split on white space. The proxy on this host is trusted to say where
# agents connect from (X-Forwarded-For); add --geoip FILE (twice: ASN and country),
# --testlist FILE, --resolver IP as needed.
NETSONDE_OPTS="--trusted-proxy 127.0.0.1 --trusted-proxy ::1"
EOF
    install -m 0640 -o root -g "$COLLECTOR_USER" "$new" "$ROOT$ENV_FILE"
    info "wrote $ENV_FILE"
fi
# The file is systemd's format; the one written above is also valid shell.
# shellcheck disable=SC1090
DB=$(set -a && . "$ROOT$ENV_FILE" && printf '%s' "${NETSONDE_DB:-$SQLITE_DB}")

step "database"
db=$DB
# Under --root, a SQLite file in the state directory is the one inside it.
case $db in
    "$SQLITE_DB") db=sqlite:///$ROOT$STATE_DIR/netsonde.db ;;
esac
# Opening the storage creates or migrates the schema; done as the service user, so the
# SQLite file is its own.
if ! as_user "$COLLECTOR_USER" "$ROOT$VENV_DIR/bin/netsonde-collector" agents list --db "$db" >/dev/null; then
    case $db in
        sqlite:*) die "cannot open the database $db (see above)" ;;
        *) die "cannot open the PostgreSQL database in $ENV_FILE (see above); is it running, and do the user and database exist? For example: sudo -u postgres createuser -P netsonde && sudo -u postgres createdb -O netsonde netsonde" ;;
    esac
fi
case $db in
    sqlite:*) info "SQLite database ${db#sqlite:///} ready" ;;
    *) info "PostgreSQL database ready" ;;
esac

step "systemd unit"
install_unit "$UNIT"

step "service"
systemd_enable "$UNIT" 1

step "done"
info "options: $ENV_FILE (then: systemctl restart ${UNIT%.service})"
info "logs:    journalctl -u ${UNIT%.service}"
info "TLS:     put a reverse proxy in front, for example deploy/nginx-netsonde.conf"
info "To enrol an agent, create a one-time token here:"
# shellcheck disable=SC2016  # the $NETSONDE_DB is for the shell that runs the command
info "  runuser -u $COLLECTOR_USER -- sh -c '. $ENV_FILE && exec $VENV_DIR/bin/netsonde-collector enroll --name pi-city-1 --db \"\$NETSONDE_DB\"'"
info "then on the agent's machine, from a netsonde checkout:"
info "  sudo bash deploy/install-agent.sh --collector https://collector.example.org --token-file token.txt"
