#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the audit store tests, on 127.0.0.1 only.
#
#   .ci/postgres.sh [start]   install the server if missing, create and start the cluster,
#                             create database guard_test; prints `export GUARD_TEST_POSTGRES_DSN=...`
#   .ci/postgres.sh stop      stop it (fast shutdown)      .ci/postgres.sh status
#   .ci/postgres.sh kill      stop it the hard way (immediate: like a crash)
#   .ci/postgres.sh destroy   stop it and delete its data
#
# Safe as root: initdb and the server run as the `postgres` user (PostgreSQL refuses root).
# The DSN is also written to $GUARD_PG_DIR/dsn, where the tests find it when the variable
# is not exported. Settings: GUARD_PG_DIR (default /tmp/guard-test-postgres), GUARD_PG_PORT
# (default 55432).
set -euo pipefail

dir=${GUARD_PG_DIR:-/tmp/guard-test-postgres}
port=${GUARD_PG_PORT:-55432}
data=$dir/data
dsn="postgresql://guard:guard@127.0.0.1:$port/guard_test"

find_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
        echo "postgres.sh: PostgreSQL server not found; installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$found"
}

# Run a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bin=$(find_bin)
pg_ctl() { as_owner "$bin/pg_ctl" -D "$data" "$@"; }

case "${1:-start}" in
start)
    if [ ! -s "$data/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
        echo guard > "$dir/pwfile"
        as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 --locale=C.UTF-8 >&2 \
            || as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 --locale=C >&2
        cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
max_connections = 50
CONF
    fi
    if ! pg_ctl status >/dev/null 2>&1; then
        pg_ctl -w -t 60 -l "$dir/server.log" start >&2
    fi
    psql=("$bin/psql" -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
    if [ -z "$(as_owner "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'guard'")" ]; then
        as_owner "${psql[@]}" -d postgres -c "CREATE ROLE guard LOGIN PASSWORD 'guard'" >&2
    fi
    if [ -z "$(as_owner "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'guard_test'")" ]; then
        as_owner "${psql[@]}" -d postgres -c "CREATE DATABASE guard_test OWNER guard" >&2
    fi
    echo "$dsn" > "$dir/dsn"
    chmod a+r "$dir/dsn"
    echo "export GUARD_TEST_POSTGRES_DSN=$dsn"
    ;;
stop)
    pg_ctl status >/dev/null 2>&1 && pg_ctl -w -t 60 -m fast stop >&2 || true
    ;;
kill)
    pg_ctl status >/dev/null 2>&1 && pg_ctl -w -t 60 -m immediate stop >&2 || true
    ;;
status)
    pg_ctl status
    ;;
destroy)
    pg_ctl status >/dev/null 2>&1 && pg_ctl -w -t 60 -m immediate stop >&2 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 [start|stop|kill|status|destroy]" >&2
    exit 2
    ;;
esac
