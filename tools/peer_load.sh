#!/usr/bin/env bash
# The whole peer_load scenario against the real binary: a fresh store, an account (its default All
# policy removed unless --default-policy), a reusable setup key, the server started on a free port;
# then the phases in order, each printing peer_load's report (see tools/peer_load/main.cpp).
#
#   tools/peer_load.sh [--peers N] [--default-policy] [--phases "register sync restart storm churn"]
#                      [--hold S] [--concurrency C] [--timeout S (register; default 120)]
#                      [-- extra peer_load flags]
#   scripts/pg_throwaway.sh tools/peer_load.sh --engine postgres [...]
#
# Phases: register (N peers with the setup key), sync (all open Sync at once, hold --hold s),
# restart (SIGTERM the server, start it again, then all reconnect at once with Login + Sync, as
# agents do; restart-sync: Sync alone), change (all hold maps, one more peer registers: the time
# until every stream holds the newer map), storm (all close and reconnect at once), churn (10% of
# the peers a second for 10 s).
# Run from the repository root after building (build/server/netbird-mgmt, build/tools/peer_load).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NBM_BIN:-build/server/netbird-mgmt}
load=${NBM_PEER_LOAD:-build/tools/peer_load}
config=${NBM_CONFIG:-deploy/management.json}
peers=500 engine=sqlite default_policy=no hold=2 concurrency=64 timeout=120
phases="register sync restart storm churn"
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --peers) peers=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --default-policy) default_policy=yes; shift ;;
    --phases) phases=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "peer_load.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for f in "$bin" "$load"; do [ -x "$f" ] || { echo "peer_load.sh: build $f first" >&2; exit 2; }; done
[ -f "$config" ] || { echo "peer_load.sh: no config $config (set NBM_CONFIG)" >&2; exit 2; }

work=$(mktemp -d /tmp/nbm-load.XXXXXX)
data=$work/data
mkdir -p "$data"
case $engine in
  sqlite) export NETBIRD_STORE_ENGINE=sqlite ;;
  postgres)
    [ -n "${NBM_TEST_PG_DSN:-}" ] || { echo "peer_load.sh: run under scripts/pg_throwaway.sh" >&2; exit 2; }
    export NETBIRD_STORE_ENGINE=postgres NB_STORE_ENGINE_POSTGRES_DSN=$NBM_TEST_PG_DSN ;;
  *) echo "peer_load.sh: --engine sqlite|postgres" >&2; exit 2 ;;
esac

pid=
stop_server() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap 'stop_server; rm -rf "$work"' EXIT

admin() { "$bin" admin --config "$config" --datadir "$data" "$@"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
metrics=$(free_port)
start_server() {
  "$bin" management --config "$config" --datadir "$data" --port "$port" --metrics-port "$metrics" \
    --disable-legacy-port \
    --log-file console --log-level warn >>"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    build/tools/peer_sim --server "127.0.0.1:$port" server-key >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "peer_load.sh: the server did not come up; its log:" >&2
  tail -20 "$work/server.log" >&2
  exit 1
}
rss() { awk '/^VmRSS:/{print $2}' "/proc/$pid/status"; }

account=$(admin account create --domain load.example | awk '/^account_id: /{print $2}')
[ -n "$account" ] || { echo "peer_load.sh: account create failed" >&2; exit 1; }
if [ "$default_policy" = no ]; then
  for id in $(admin policy list --account-id "$account" | awk '/^[^ ]/{print $1}'); do
    admin policy delete --account-id "$account" --policy-id "$id" >/dev/null
  done
fi
key=$(admin setup-key create --account "$account" --name load --reusable | awk '/^setup_key: /{print $2}')
[ -n "$key" ] || { echo "peer_load.sh: setup-key create failed" >&2; exit 1; }
start_server
echo "== engine=$engine peers=$peers default_policy=$default_policy server_pid=$pid idle_rss_kib=$(rss)"

run() { # phase, flags...
  echo "== peer_load $*"
  "$load" "$@" --server "127.0.0.1:$port" --peers "$peers" --keys-file "$work/peers.keys" \
    --server-pid "$pid" ${extra[@]+"${extra[@]}"} | tee "$work/last.out" || echo "== (peer_load exit $?)"
}
for phase in $phases; do
  case $phase in
    register)
      run register --setup-key "$key" --concurrency "$concurrency" --timeout "$timeout"
      # Out of time: the later phases use the peers that did register (the first `ok` keys).
      ok=$(awk '/^register: /{for(i=1;i<=NF;i++) if($i ~ /^ok=/) print substr($i,4)}' "$work/last.out")
      if [ -n "$ok" ] && [ "$ok" -lt "$peers" ] && [ "$ok" -gt 0 ]; then
        echo "== only $ok of $peers registered within ${timeout}s: the next phases use $ok peers"
        peers=$ok
      fi ;;
    sync) run sync --hold "$hold" ;;
    restart)
      stop_server; start_server
      echo "== restarted: server_pid=$pid idle_rss_kib=$(rss)"
      run sync --login --hold "$hold" ;;
    restart-sync) # the same without the Logins: Sync alone after a restart
      stop_server; start_server
      echo "== restarted: server_pid=$pid idle_rss_kib=$(rss)"
      run sync --hold "$hold" ;;
    change) run sync --change 1 --setup-key "$key" ;; # one more peer registers while all hold maps
    storm) run storm ;;
    churn) run churn --fraction 0.1 --duration 10 ;;
    *) echo "peer_load.sh: unknown phase $phase" >&2; exit 2 ;;
  esac
done
