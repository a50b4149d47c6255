#!/usr/bin/env bash
# End-to-end checks of the real binary: CLI behaviour, config errors, store creation on SQLite and
# PostgreSQL, clean shutdown. Prints "e2e: N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
bin=${NBM_BIN:-build/server/netbird-mgmt}
fixtures=tests/fixtures # ours: nothing outside the repository is read
work=$(mktemp -d /tmp/nbm-e2e.XXXXXX)
# Servers of other runs may be up: each inspector on a port of its own.
export NBM_INSPECTOR_ADDR=127.0.0.1:0
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

# scripts/setup.sh: no or an unknown argument prints the usage before anything is installed or built
fake="$work/fakebin"; mkdir -p "$fake"
for t in apt-get dpkg-query sudo meson ninja; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/called"\nexit 1\n' "$t" "$fake" >"$fake/$t"; chmod +x "$fake/$t"
done
for args in "" "bogus"; do
  err=$(PATH="$fake:$PATH" scripts/setup.sh $args 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && grep -q "usage: scripts/setup.sh run" <<<"$err" && [ ! -e "$fake/called" ]; then
    ok "setup.sh ${args:-(no argument)}: usage, nothing installed"; else bad "setup.sh ${args:-(no argument)} (rc=$rc)" "$err$(cat "$fake/called" 2>/dev/null)"; fi
done
out=$(PATH="$fake:$PATH" scripts/setup.sh --help 2>/dev/null); rc=$?
if [ $rc -eq 0 ] && grep -q "scripts/setup.sh test" <<<"$out" && [ ! -e "$fake/called" ]; then
  ok "setup.sh --help"; else bad "setup.sh --help (rc=$rc)" "$out"; fi

# meson install: the binary, the systemd unit naming it, the example config (the Dockerfile copies these)
builddir=$(dirname "$(dirname "$bin")")
out=$(meson install -C "$builddir" --no-rebuild --quiet --destdir "$work/inst" 2>&1); rc=$?
prefix=$(meson introspect --buildoptions "$builddir" 2>/dev/null | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))' 2>/dev/null)
unit="$work/inst$prefix/lib/systemd/system/netbird-mgmt.service"
if [ $rc -eq 0 ] && [ -x "$work/inst$prefix/bin/netbird-mgmt" ] && grep -q "^ExecStart=$prefix/bin/netbird-mgmt management " "$unit" &&
  cmp -s deploy/management.json "$work/inst$prefix/share/netbird-mgmt/management.json"; then
  ok "meson install: binary, systemd unit, example config"; else bad "meson install (rc=$rc, prefix=$prefix)" "$out"; fi
pkgs=$(scripts/runtime-packages.sh "$bin" 2>&1); rc=$?
# gRPC's wire is served by our own transport over libnghttp2: the server needs no libgrpc++.
if [ $rc -eq 0 ] && grep -qx "libsoci-core4.0" <<<"$pkgs" && grep -qx "libnghttp2-14" <<<"$pkgs" && ! grep -q "^libgrpc" <<<"$pkgs" && grep -qx "libreadline8" <<<"$pkgs" && ! grep -q -- "-dev$" <<<"$pkgs"; then
  ok "runtime-packages.sh lists the runtime packages the image installs"; else bad "runtime-packages.sh (rc=$rc)" "$pkgs"; fi
# /metrics is served by our own listener: neither civetweb nor prometheus-cpp's pull library
if grep -qx "libprometheus-cpp-core1.0" <<<"$pkgs" && ! grep -q "civetweb\|prometheus-cpp-pull" <<<"$pkgs"; then
  ok "the image needs prometheus-cpp-core only (no civetweb)"; else bad "prometheus-cpp packages" "$pkgs"; fi

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
# A port that binds now, drawn below the ephemeral range (tests/support/free_port.hpp says why).
free_port() { python3 -c 'import random,socket
while True:
  p=random.randint(20000,32767)
  try: s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0); a=("::",p)
  except OSError: s=socket.socket(); a=("0.0.0.0",p)
  try: s.bind(a); print(p); break
  except OSError: pass
  finally: s.close()'; }
start_server() { # $1 = datadir, rest = env; sets $pid
  local dir=$1; shift
  local port metrics; port=$(free_port); metrics=$(free_port)
  : >"$dir.log"
  env "$@" $bin management --config "$fixtures/management.json" --datadir "$dir" --log-file console \
    --log-level debug --port "$port" --metrics-port "$metrics" --disable-legacy-port \
    >"$dir.log" 2>&1 &
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
sqlite3 "$work/d2/store.db" < "$fixtures/store_basic.sql"
start_server "$work/d2" NETBIRD_STORE_ENGINE=sqlite
if wait_for 10 grep -q "ready" "$work/d2.log"; then
  n=$(sqlite3 "$work/d2/store.db" "SELECT count(*) FROM peers WHERE id='peerfixturesolo00001' AND peer_status_session_started_at = 0")
  check "sqlite: a NetBird 0.3x store opens and gains session_started_at" test "$n" = 1
else bad "sqlite: a NetBird 0.3x store opens" "$(cat "$work/d2.log")"; fi
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

# admin configuration objects: groups, policies, routes, nameserver groups created, listed, deleted; bad input
# refused with "Error: ..." and exit 1, nothing written (the network serial counts exactly the writes)
config_flow() { # $1 = label, rest = env
  local label=$1; shift
  local dir="$work/config-$label"; mkdir -p "$dir"
  local adm=(env "$@" $bin admin --config "$fixtures/management.json" --datadir "$dir")
  local sql
  if [ "$label" = sqlite ]; then sql=(sqlite3 "$dir/store.db")
  else sql=(psql -h "$(sed -nE 's/.*host=([^ ]+).*/\1/p' <<<"$NBM_TEST_PG_DSN")" \
    -p "$(sed -nE 's/.*port=([0-9]+).*/\1/p' <<<"$NBM_TEST_PG_DSN")" -U postgres -d postgres -tA -c); fi
  refused() { # $1 = name, $2 = expected error text, rest = admin args
    local name=$1 want=$2; shift 2
    err=$("${adm[@]}" "$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 1 ] && grep -q "^Error: .*$want" <<<"$err"; then ok "$label: refused: $name"; else bad "$label: refused: $name (rc=$rc)" "$err"; fi
  }
  out=$("${adm[@]}" account create --domain config.example --no-default-policy 2>&1)
  acc=$(sed -nE 's/^account_id: (.*)$/\1/p' <<<"$out"); all=$(sed -nE 's/^all_group_id: (.*)$/\1/p' <<<"$out")
  [ -n "$acc" ] || { bad "$label: config: account create" "$out"; return; }
  local id_of='s/^id: (.*)$/\1/p' serial_of='s/^network_serial: (.*)$/\1/p'

  out=$("${adm[@]}" group create --account-id "$acc" --name servers 2>&1); rc=$?
  grp=$(sed -nE "$id_of" <<<"$out")
  if [ $rc -eq 0 ] && [ ${#grp} -eq 20 ] && grep -q "^network_serial: 1$" <<<"$out"; then
    ok "$label: group create prints the id and bumps the serial"; else bad "$label: group create (rc=$rc)" "$out"; fi
  out=$("${adm[@]}" group list --account-id "$acc" 2>&1)
  if grep -q "^$grp name=servers peers=$" <<<"$out" && grep -q "^$all name=All peers=" <<<"$out"; then
    ok "$label: group list"; else bad "$label: group list" "$out"; fi
  refused "group with an unknown peer" "peer with ID nope not found" group create --account-id "$acc" --name other --peers nope
  refused "group of an unknown account" "no account nope" group create --account-id nope --name x

  out=$("${adm[@]}" policy create --account-id "$acc" --name web --source "$all" --destination "$grp" \
    --protocol tcp --ports 80,443 2>&1); rc=$?
  pol=$(sed -nE "$id_of" <<<"$out")
  rule=$("${sql[@]}" "SELECT protocol || '|' || action || '|' || ports || '|' || sources || '|' || name FROM policy_rules WHERE policy_id = '$pol'" 2>&1)
  if [ $rc -eq 0 ] && [ "$rule" = "tcp|accept|[\"80\",\"443\"]|[\"$all\"]|web" ]; then
    ok "$label: policy create stores NetBird's rule encoding"; else bad "$label: policy create (rc=$rc)" "$out"$'\n'"$rule"; fi
  out=$("${adm[@]}" policy list --account-id "$acc" 2>&1)
  if grep -q "^$pol name=web enabled=true rules=1$" <<<"$out" && grep -q "rule $pol name=web action=accept protocol=tcp .*ports=80,443" <<<"$out"; then
    ok "$label: policy list"; else bad "$label: policy list" "$out"; fi
  refused "a bad protocol" "unknown protocol type: sctp" policy create --account-id "$acc" --name p --source "$all" --destination "$grp" --protocol sctp
  refused "a bad port range" "invalid port range 2000-1000" policy create --account-id "$acc" --name p --source "$all" --destination "$grp" --protocol udp --port-range 2000-1000
  refused "a policy with an unknown group" "group missing not found" policy create --account-id "$acc" --name p --source missing --destination "$grp"

  out=$("${adm[@]}" route create --account-id "$acc" --network 10.20.0.9/24 --net-id office --peer-groups "$grp" --groups "$all" --masquerade 2>&1); rc=$?
  rt=$(sed -nE "$id_of" <<<"$out")
  row=$("${sql[@]}" "SELECT network || '|' || network_type || '|' || peer_groups || '|' || metric FROM routes WHERE id = '$rt'" 2>&1)
  if [ $rc -eq 0 ] && [ "$row" = "\"10.20.0.0/24\"|1|[\"$grp\"]|9999" ]; then
    ok "$label: route create stores the masked IPv4 network (network_type 1)"; else bad "$label: route create (rc=$rc)" "$out"$'\n'"$row"; fi
  out=$("${adm[@]}" route list --account-id "$acc" 2>&1)
  if grep -q "^$rt net_id=office network=10.20.0.0/24 peer= peer_groups=$grp groups=$all metric=9999 masquerade=true" <<<"$out"; then
    ok "$label: route list"; else bad "$label: route list" "$out"; fi
  refused "a bad CIDR" "invalid network 10.20.0.0/33" route create --account-id "$acc" --network 10.20.0.0/33 --net-id x --peer-groups "$grp" --groups "$all"
  refused "a route without a routing peer" "either .peer. or .peer_groups. should be provided" route create --account-id "$acc" --network 10.30.0.0/16 --net-id x --groups "$all"

  out=$("${adm[@]}" nameserver create --account-id "$acc" --name google --nameservers 8.8.8.8,8.8.4.4:5353 --groups "$all" --primary 2>&1); rc=$?
  ns=$(sed -nE "$id_of" <<<"$out")
  row=$("${sql[@]}" "SELECT name_servers FROM name_server_groups WHERE id = '$ns'" 2>&1)
  if [ $rc -eq 0 ] && [ "$row" = '[{"IP":"8.8.8.8","NSType":1,"Port":53},{"IP":"8.8.4.4","NSType":1,"Port":5353}]' ]; then
    ok "$label: nameserver create stores NetBird's encoding"; else bad "$label: nameserver create (rc=$rc)" "$out"$'\n'"$row"; fi
  out=$("${adm[@]}" nameserver list --account-id "$acc" 2>&1)
  if grep -q "^$ns name=google nameservers=8.8.8.8:53,8.8.4.4:5353 groups=$all domains= primary=true" <<<"$out"; then
    ok "$label: nameserver list"; else bad "$label: nameserver list" "$out"; fi
  refused "a bad nameserver IP" "invalid nameserver IP 8.8.8.300" nameserver create --account-id "$acc" --name bad --nameservers 8.8.8.300 --groups "$all" --primary

  refused "deleting a group a route uses" "linked to route: office" group delete --account-id "$acc" --group-id "$grp"
  refused "deleting an unknown policy" "no policy nope" policy delete --account-id "$acc" --policy-id nope
  local deleted=0
  for args in "policy delete --policy-id $pol" "route delete --route-id $rt" "nameserver delete --nameserver-group-id $ns" "group delete --group-id $grp"; do
    out=$("${adm[@]}" $args --account-id "$acc" 2>&1) && grep -q "^deleted: " <<<"$out" && deleted=$((deleted + 1))
  done
  serial=$(sed -nE "$serial_of" <<<"$out")
  left=$("${sql[@]}" "SELECT (SELECT COUNT(*) FROM policies WHERE account_id = '$acc') + (SELECT COUNT(*) FROM routes WHERE account_id = '$acc') + (SELECT COUNT(*) FROM name_server_groups WHERE account_id = '$acc') + (SELECT COUNT(*) FROM \"groups\" WHERE account_id = '$acc') + (SELECT COUNT(*) FROM group_peers WHERE account_id = '$acc')" 2>&1)
  # 4 creates + 4 deletes landed; none of the refused commands wrote or bumped anything.
  if [ $deleted -eq 4 ] && [ "$serial" = 8 ] && [ "$left" = 1 ]; then
    ok "$label: deletes land; the serial counts exactly the 8 writes"; else bad "$label: deletes (deleted=$deleted serial=$serial left=$left)" "$out"; fi
}
config_flow sqlite NETBIRD_STORE_ENGINE=sqlite
[ -n "${NBM_TEST_PG_DSN:-}" ] && config_flow postgres NETBIRD_STORE_ENGINE=postgres NB_STORE_ENGINE_POSTGRES_DSN="$NBM_TEST_PG_DSN"

# gRPC's Go client (what NetBird's agents are built on) against the server's HTTP/2 transport
gopath="$work/gopath"; mkdir -p "$gopath/src/go_client"
cp tests/e2e/go_client/main.go "$gopath/src/go_client/"
if out=$(cd "$gopath/src/go_client" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$work/gocache" \
    go build -o "$work/go_client" . 2>&1); then
  mkdir -p "$work/d9"
  port=$(free_port)
  $bin management --config "$fixtures/management.json" --datadir "$work/d9" --log-file console \
    --log-level debug --port "$port" --metrics-port "$(free_port)" --disable-legacy-port >"$work/d9.log" 2>&1 &
  pid=$!
  if wait_for 10 grep -q "ready" "$work/d9.log"; then
    out=$(timeout 60 "$work/go_client" "127.0.0.1:$port" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then ok "grpc-go client: unary, refusals, a stream, keepalive"; else bad "grpc-go client (rc=$rc)" "$out"; fi
  else bad "grpc-go client: server did not start" "$(cat "$work/d9.log")"; fi
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
else
  bad "grpc-go client: build (scripts/install-deps.sh --test installs golang-go golang-google-grpc-dev)" "$out"
fi

echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
