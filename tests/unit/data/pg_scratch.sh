#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster for tests and for
# regenerating the golden dumps. The cluster listens on 127.0.0.1 and on a
# Unix socket inside DIR, with trust authentication for the superuser
# "postgres". PostgreSQL refuses to run as root, so when this script runs as
# root the server runs as the "postgres" user, which must then own DIR.
#
#   pg_scratch.sh start DIR   creates DIR/data, starts the server, prints the port
#   pg_scratch.sh stop DIR    stops the server started in DIR
#
# PG_BIN selects the PostgreSQL binaries (default: PostgreSQL 15 on Debian).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

run_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1
    local port

    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    run_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }

    port=$(free_port)
    run_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    echo "$port"
}

stop() {
    local dir=$1

    run_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
