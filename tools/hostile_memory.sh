#!/usr/bin/env bash
# The server's resident memory across rounds of hostile input on one port: 1000 slow connections
# (bench_slow_clients), 300 policy bodies nested 60,000 deep, 300 setup keys with an overflowing expires_in.
# Prints RSS after each round (flat after the first: nothing is kept). Usage: tools/hostile_memory.sh
set -u
cd "$(dirname "$0")/.."
bin=build/server/netbird-mgmt
d=$(mktemp -d /tmp/hostile.XXXX); port=${PORT:-39377}
cp deploy/management.json $d/m.json
out=$($bin admin account create --domain mem.example --config $d/m.json --datadir $d 2>&1)
pat=$(grep -oE 'nbp_[A-Za-z0-9]+' <<<"$out" | head -1)
NBM_HTTP_MAX_CONNS_PER_IP=0 $bin management --config $d/m.json --datadir $d --port $port --metrics-port 39378 --disable-legacy-port --log-file $d/log --log-level info &
pid=$!; sleep 2
rss() { awk '/VmRSS/{print $2}' /proc/$pid/status; }
deep=$(python3 -c 'print("{\"name\":\"x\",\"rules\":" + "["*60000 + "]"*60000 + "}")')
echo "$deep" > $d/deep.json
echo "start rss_kb=$(rss)"
for round in 1 2 3; do
  build/tools/bench_slow_clients --port $port --pat "$pat" --conns 1000 --requests 200 > $d/bench$round.log 2>&1
  for i in $(seq 1 300); do
    curl -s -o /dev/null -X POST -H "Authorization: Token $pat" --data-binary @$d/deep.json http://127.0.0.1:$port/api/policies
    curl -s -o /dev/null -X POST -H "Authorization: Token $pat" -d '{"name":"k","type":"reusable","expires_in":9223372036854775807}' http://127.0.0.1:$port/api/setup-keys
  done
  echo "round $round rss_kb=$(rss) alive=$(kill -0 $pid && echo yes) rest_p99=$(grep -i p99 $d/bench$round.log | head -2 | tr '\n' ' ')"
done
kill $pid; wait $pid; rm -rf $d
