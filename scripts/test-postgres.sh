#!/usr/bin/env bash
# A private PostgreSQL server for a test run (make test; the cluster tests start their own).
#
#   scripts/test-postgres.sh start DIR   creates the cluster in DIR/data once (initdb: trust
#                                        auth, locale C.UTF-8, UTF8, superuser postgres), starts
#                                        it listening only on a Unix socket in DIR, and prints
#                                        the connection string: host=DIR user=postgres
#   scripts/test-postgres.sh stop DIR    stops it (nothing to do when it does not run)
#
# Test settings, never for data anyone keeps: fsync=off, synchronous_commit=off, no TCP
# (listen_addresses=''), max_connections=300. With PG_PROFILE=bench (make bench), a server as an
# operator would run it instead: fsync and synchronous_commit on (every commit waits for its WAL
# flush, as the appliance's own SQLite does), and pg_stat_statements loaded so bench-postgres can
# count the statements each check costs. The profile is written when DIR is created; use a
# directory of its own for each. Run as root, the server runs as the `postgres`
# user (PostgreSQL refuses root) and DIR is given to it; run as another user, it runs as that
# user. The binaries come from PG_BIN, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)

if [ -z "${PG_BIN:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "${PG_BIN:-}/pg_ctl" ] || { echo "$0: no PostgreSQL binaries (apt install postgresql, or set PG_BIN)" >&2; exit 1; }

# Runs a command as the server's user.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres:postgres "$dir"
    fi
    # Clients of other users connect through the socket in DIR.
    chmod 0755 "$dir"
    as_server test -r "$dir" -a -w "$dir" -a -x "$dir" \
      || { echo "$0: $dir is not usable by the server's user (check its parent directories)" >&2; exit 1; }
    if [ "${PG_PROFILE:-test}" = bench ]; then
      settings="fsync = on
synchronous_commit = on
shared_preload_libraries = 'pg_stat_statements'"
    else
      settings="fsync = off
synchronous_commit = off
full_page_writes = off"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_server "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --locale=C.UTF-8 --encoding=UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/test-postgres.sh: a throw-away server for tests
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
max_connections = 300
$settings
log_min_messages = warning
EOF
    fi
    as_server "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "host=$dir user=postgres"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_server "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  *) usage ;;
esac
