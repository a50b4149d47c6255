#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 (initdb into a temp dir, own port and socket, no fsync), runs the given
# command with NBM_TEST_PG_DSN pointing at it, then stops and removes it. Works whether or not a system
# cluster is running. Needs root (initdb runs as user postgres) or to be run as postgres.
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$PGBIN/initdb" ] || { echo "pg_throwaway: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 2; }
dir=$(mktemp -d /tmp/nbm-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)))
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$dir/data" -w -l "$dir/log" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null \
  || { cat "$dir/log" >&2; exit 2; }
export NBM_TEST_PG_DSN="host=127.0.0.1 port=$port dbname=postgres user=postgres connect_timeout=5"
export NBM_TEST_PG_DIR="$dir"
"$@"
