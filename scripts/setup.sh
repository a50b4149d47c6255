#!/usr/bin/env bash
# One command for a fresh Debian 12 machine:
#   scripts/setup.sh run   install, build, start the server on SQLite in ./data (console logs)
#   scripts/setup.sh test  install, build, start a throwaway PostgreSQL, run every test
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
shift || true
if [ "$mode" = test ]; then scripts/install-deps.sh --test; else scripts/install-deps.sh; fi
scripts/build.sh
case "$mode" in
  run)
    mkdir -p data
    [ -f data/management.json ] || cp deploy/management.json data/management.json
    exec build/server/netbird-mgmt management --config data/management.json --datadir data \
      --log-file console "$@" ;;
  test)
    exec scripts/test.sh "$@" ;;
  *) echo "usage: scripts/setup.sh run|test" >&2; exit 2 ;;
esac
