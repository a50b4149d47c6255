#!/usr/bin/env bash
# Configures (once) and builds into ./build. Arguments are meson setup options, used only when
# ./build is configured for the first time (scripts/setup.sh test passes -Ddebug=false: the test
# build carries no debug info, which cuts its compile and link time by about a quarter on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || meson setup build "$@" >/dev/null
ninja -C build
