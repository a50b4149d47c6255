#!/usr/bin/env bash
# End-to-end checks of the real binary: CLI behaviour, config errors, store creation on SQLite and
# PostgreSQL, clean shutdown. Prints "e2e: N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
bin=${NBM_BIN:-build/server/netbird-mgmt}
fixtures=${NBM_FIXTURES:-../shared/fixtures/netbird}
work=$(mktemp -d /tmp/nbm-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/       /'; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# --version and help
out=$($bin --version 2>&1); rc=$?
check "--version exits 0 and names the version" test $rc -eq 0 -a -n "$(grep -E '[0-9]+\.[0-9]+\.[0-9]+' <<<"$out")"
out=$($bin management --help 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q -- --letsencrypt-domain <<<"$out" && grep -q -- --datadir <<<"$out"; then
  ok "management --help lists the flags"; else bad "management --help lists the flags (rc=$rc)" "$out"; fi

# bad flags: error + usage on stderr, non-zero exit
for args in "management --no-such-flag" "management --port abc" "management --port 70000" "management --log-level loud"; do
  err=$($bin $args 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && grep -qi "usage" <<<"$err"; then ok "rejects: $args"; else bad "rejects: $args (rc=$rc)" "$err"; fi
done

# config errors name the file and the line
printf '{\n  "Stuns": [\n    {"Proto": "udp", "URI": "stun:a:3478"}\n  ],\n  "TURNConfig": "not an object"\n}\n' > "$work/bad.json"
err=$($bin management --config "$work/bad.json" --datadir "$work/d0" --log-file console 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "bad.json" <<<"$err" && grep -q "TURNConfig" <<<"$err" && grep -Eq "line 5" <<<"$err"; then
  ok "a wrong type names file, field and line"; else bad "a wrong type names file, field and line (rc=$rc)" "$err"; fi
err=$($bin management --config "$work/missing.json" --datadir "$work/d0" --log-file console 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "missing.json" <<<"$err"; then ok "a missing config file is named"; else bad "missing config (rc=$rc)" "$err"; fi

# start on SQLite: creates <datadir>/store.db with NetBird's schema, stops cleanly on SIGTERM
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start_server() { # $1 = datadir, rest = env; sets $pid
  local dir=$1; shift
  env "$@" $bin management --config "$fixtures/management.json" --datadir "$dir" --log-file console \
    --log-level debug --port "$(free_port)" >"$dir.log" 2>&1 &
  pid=$!
}
wait_for() { # $1 = seconds, rest = command
  local t=$1; shift
  for _ in $(seq 1 $((t * 10))); do "$@" && return 0; sleep 0.1; done
  return 1
}
mkdir -p "$work/d1"
start_server "$work/d1" NETBIRD_STORE_ENGINE=
if wait_for 10 test -s "$work/d1/store.db" && wait_for 10 grep -q "ready" "$work/d1.log"; then
  ok "sqlite: server starts and creates store.db"
  tables=$(sqlite3 "$work/d1/store.db" ".tables")
  cols=$(sqlite3 "$work/d1/store.db" "PRAGMA table_info(peers)")
  if grep -q "peer_status_session_started_at" <<<"$cols" && grep -qw group_peers <<<"$tables" && grep -qw policy_rules <<<"$tables"; then
    ok "sqlite: store has NetBird's core tables"; else bad "sqlite: schema" "$tables"; fi
else
  bad "sqlite: server starts and creates store.db" "$(cat "$work/d1.log")"
fi
kill -TERM "$pid" 2>/dev/null
if wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"; then wait "$pid"; rc=$?
  check "sqlite: SIGTERM stops the server with status 0" test $rc -eq 0
else bad "sqlite: SIGTERM stops the server"; kill -KILL "$pid"; fi

# an existing NetBird store opens as it is (and is migrated forward)
mkdir -p "$work/d2"
sqlite3 "$work/d2/store.db" < "$fixtures/store.sql"
start_server "$work/d2" NETBIRD_STORE_ENGINE=sqlite
if wait_for 10 grep -q "ready" "$work/d2.log"; then
  n=$(sqlite3 "$work/d2/store.db" "SELECT count(*) FROM peers WHERE id='ct286bi7qv930dsrrug0' AND peer_status_session_started_at = 0")
  check "sqlite: NetBird's store.sql opens and gains session_started_at" test "$n" = 1
else bad "sqlite: NetBird's store.sql opens" "$(cat "$work/d2.log")"; fi
kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null

# PostgreSQL chosen by environment, as NetBird does
if [ -n "${NBM_TEST_PG_DSN:-}" ]; then
  mkdir -p "$work/d3"
  start_server "$work/d3" NETBIRD_STORE_ENGINE=postgres NB_STORE_ENGINE_POSTGRES_DSN="$NBM_TEST_PG_DSN"
  if wait_for 15 grep -q "ready" "$work/d3.log"; then
    host=$(sed -nE 's/.*host=([^ ]+).*/\1/p' <<<"$NBM_TEST_PG_DSN"); port=$(sed -nE 's/.*port=([0-9]+).*/\1/p' <<<"$NBM_TEST_PG_DSN")
    n=$(psql -h "$host" -p "$port" -U postgres -d postgres -tAc "SELECT count(*) FROM information_schema.columns WHERE table_schema='public' AND table_name='peers' AND column_name='peer_status_session_started_at'" 2>&1)
    check "postgres: server starts and creates the schema" test "$n" = 1
    check "postgres: no store.db is written" test ! -e "$work/d3/store.db"
  else bad "postgres: server starts" "$(cat "$work/d3.log")"; fi
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  err=$(NETBIRD_STORE_ENGINE=postgres NB_STORE_ENGINE_POSTGRES_DSN= NETBIRD_STORE_ENGINE_POSTGRES_DSN= \
    $bin management --config "$fixtures/management.json" --datadir "$work/d4" --log-file console 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qi "dsn" <<<"$err"; then ok "postgres without a DSN: clear error"; else bad "postgres without DSN (rc=$rc)" "$err"; fi
else
  bad "postgres: NBM_TEST_PG_DSN not set (run through scripts/test.sh)"
fi

# admin bootstrap: account with owner and PAT, setup keys created, listed, revoked — SQLite and PostgreSQL
admin_flow() { # $1 = label, rest = env
  local label=$1; shift
  local dir="$work/admin-$label"; mkdir -p "$dir"
  local adm=(env "$@" $bin admin --config "$fixtures/management.json" --datadir "$dir")
  out=$("${adm[@]}" account create --domain example.com --owner-email owner@example.com 2>&1); rc=$?
  acc=$(sed -nE 's/^account_id: (.*)$/\1/p' <<<"$out"); all=$(sed -nE 's/^all_group_id: (.*)$/\1/p' <<<"$out")
  pat=$(sed -nE 's/^personal_access_token: (.*)$/\1/p' <<<"$out")
  if [ $rc -eq 0 ] && [ ${#acc} -eq 20 ] && [[ "$pat" =~ ^nbp_[0-9A-Za-z]{36}$ ]]; then
    ok "$label: admin account create prints the account and a PAT"; else bad "$label: admin account create" "$out"; return; fi
  out=$("${adm[@]}" setup-key create --account "$acc" --name laptops --reusable --usage-limit 5 --auto-groups "$all" --expires-in 24h 2>&1); rc=$?
  kid=$(sed -nE 's/^id: (.*)$/\1/p' <<<"$out"); key=$(sed -nE 's/^setup_key: (.*)$/\1/p' <<<"$out")
  if [ $rc -eq 0 ] && [[ "$key" =~ ^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$ ]] && grep -q "type: reusable" <<<"$out"; then
    ok "$label: admin setup-key create prints the plain key once"; else bad "$label: setup-key create" "$out"; fi
  out=$("${adm[@]}" setup-key list --account "$acc" 2>&1)
  if grep -q "$kid name=laptops type=reusable key=${key:0:5}\*\*\*\* revoked=false used=0 limit=5" <<<"$out" && ! grep -q "$key" <<<"$out"; then
    ok "$label: admin setup-key list shows the key masked"; else bad "$label: setup-key list" "$out"; fi
  out=$("${adm[@]}" setup-key revoke --account "$acc" --id "$kid" 2>&1); rc=$?
  if [ $rc -eq 0 ] && "${adm[@]}" setup-key list --account "$acc" 2>&1 | grep -q "$kid .*revoked=true"; then
    ok "$label: admin setup-key revoke"; else bad "$label: setup-key revoke" "$out"; fi
  err=$("${adm[@]}" setup-key create --account nope --name x 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "no account nope" <<<"$err"; then ok "$label: unknown account is refused"; else bad "$label: unknown account (rc=$rc)" "$err"; fi
  err=$("${adm[@]}" setup-key create --account "$acc" --name x --auto-groups missing 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "missing" <<<"$err"; then ok "$label: unknown auto-group is refused"; else bad "$label: unknown auto-group (rc=$rc)" "$err"; fi
  err=$("${adm[@]}" setup-key create --account "$acc" --name x --expires-in soon 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "expires-in" <<<"$err"; then ok "$label: a bad --expires-in is refused"; else bad "$label: bad --expires-in (rc=$rc)" "$err"; fi
}
admin_flow sqlite NETBIRD_STORE_ENGINE=sqlite
[ -n "${NBM_TEST_PG_DSN:-}" ] && admin_flow postgres NETBIRD_STORE_ENGINE=postgres NB_STORE_ENGINE_POSTGRES_DSN="$NBM_TEST_PG_DSN"

echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
