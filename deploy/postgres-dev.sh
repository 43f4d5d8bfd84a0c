#!/usr/bin/env bash
# A local PostgreSQL for development and the storage tests, idempotently: start the
# Debian cluster if it is down, make sure the current OS user has a superuser role
# (peer authentication over the unix socket, so no password), and print a SQLAlchemy
# URL for it on stdout. Everything else goes to stderr, so callers can do
#   NETSONDE_TEST_PG_URL=$(bash deploy/postgres-dev.sh)
# Exits non-zero with a reason on stderr when no PostgreSQL is installed or it will not start.
set -euo pipefail

die() {
    echo "postgres-dev: $*" >&2
    exit 1
}

command -v pg_lsclusters >/dev/null || die "PostgreSQL is not installed (apt-get install postgresql)"

# The newest installed cluster; Debian names them "VERSION NAME".
read -r version cluster port status _ < <(pg_lsclusters --no-header | sort -k1,1V | tail -n 1) ||
    die "no PostgreSQL cluster exists (pg_createcluster --start 15 main)"
socket_dir=/var/run/postgresql

if [ "${status%%,*}" != "online" ]; then
    [ "$(id -u)" -eq 0 ] || die "cluster $version/$cluster is $status and only root can start it"
    echo "postgres-dev: starting cluster $version/$cluster" >&2
    pg_ctlcluster "$version" "$cluster" start >&2 || die "cluster $version/$cluster did not start"
fi

user=$(id -un)
as_postgres() {
    if [ "$user" = postgres ]; then
        "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        die "cannot act as the postgres user to create role $user"
    fi
}

for _ in $(seq 1 50); do
    pg_isready -q -h "$socket_dir" -p "$port" && break
    sleep 0.1
done
pg_isready -q -h "$socket_dir" -p "$port" || die "cluster $version/$cluster does not accept connections"

exists=$(as_postgres psql -h "$socket_dir" -p "$port" -d postgres -tAc \
    "SELECT 1 FROM pg_roles WHERE rolname = '$user'")
if [ "$exists" != 1 ]; then
    echo "postgres-dev: creating superuser role $user" >&2
    as_postgres psql -h "$socket_dir" -p "$port" -d postgres -qc \
        "CREATE ROLE \"$user\" LOGIN SUPERUSER" >&2
fi

echo "postgresql+psycopg://${user}@/postgres?host=${socket_dir}&port=${port}"
