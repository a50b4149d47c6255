#!/usr/bin/env bash
# One command for a fresh Debian 12 machine (see usage below).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
  cat <<'USAGE'
usage: scripts/setup.sh run [management flags...]
       scripts/setup.sh test [scripts/test.sh arguments...]

  run    install the Debian packages (apt-get, needs root or sudo), build, and start the server
         on SQLite in ./data with its logs on the console: ./data/management.json (a copy of
         deploy/management.json naming ./data as its Datadir), gRPC and the REST API on port
         33073. Admin commands then need only the same --config:
           build/server/netbird-mgmt admin --config data/management.json account create --domain example.com
  test   install the packages the tests need too (clang for the sanitizer build), build, start
         a throwaway PostgreSQL and run every test (prints "N passed, M failed")
USAGE
}
mode=${1:-}
case "$mode" in
  run | test) shift ;;
  -h | --help | help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
  *) echo "scripts/setup.sh: unknown command '$mode'" >&2; usage >&2; exit 2 ;;
esac
if [ "$mode" = test ]; then scripts/install-deps.sh --test; else scripts/install-deps.sh; fi
if [ "$mode" = test ]; then scripts/build.sh -Ddebug=false; else scripts/build.sh; fi
case "$mode" in
  run)
    mkdir -p data
    # The config names the datadir, so the server and `admin --config data/management.json` open
    # the same store without a --datadir.
    if [ ! -f data/management.json ]; then
      datadir=$(pwd)/data
      datadir=${datadir//|/\\|}
      sed -E "s|\"Datadir\": \"[^\"]*\"|\"Datadir\": \"${datadir//&/\\&}\"|" deploy/management.json \
        >data/management.json
    fi
    # A data/management.json of an earlier set-up may name no datadir: then say it here.
    flags=()
    grep -q '"Datadir": ""' data/management.json && flags=(--datadir data)
    exec build/server/netbird-mgmt management --config data/management.json "${flags[@]}" \
      --log-file console "$@" ;;
  test)
    exec scripts/test.sh "$@" ;;
esac
