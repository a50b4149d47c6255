#!/usr/bin/env bash
# The sanitizer build: one clang build dir (build-san) with AddressSanitizer and
# UndefinedBehaviorSanitizer (UB is fatal), holding the unit and store suites that need no actor
# system and the libFuzzer targets (meson option fuzz=true). Only those targets are built.
#   scripts/sanitize.sh build                 configure (once) and build them
#   scripts/sanitize.sh suites                list the suites (paths), one a line
#   scripts/sanitize.sh targets               list the fuzz targets (names), one a line
#   scripts/sanitize.sh env CMD...            run CMD with the sanitizer options set
#   scripts/sanitize.sh fuzz NAME [FLAGS...]  run fuzz target NAME over its committed corpus
#       (tests/fuzz/corpus/NAME minus the "fuzz_"), e.g. -max_total_time=15 or -runs=1000000.
#       New inputs go to a scratch dir, never into the committed corpus; a crashing input is
#       kept in build-san/fuzz-artifacts/ and printed as base64 (so a CI log carries it).
# scripts/test.sh runs the suites as "asan/<suite>" and each fuzz target as one test case.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-san
suites=(tests/core/test_core tests/crypto/test_crypto tests/config/test_config
  tests/geo/test_geo tests/storage/test_storage tests/api/test_h2)
targets=(fuzz_envelope fuzz_config fuzz_first_bytes fuzz_rest_decode fuzz_posture fuzz_h2)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

case "${1:-}" in
  build)
    if [ ! -f "$dir/build.ninja" ]; then
      CC=clang CXX=clang++ meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dwerror=false -Dbuildtype=debugoptimized -Doptimization=1 \
        -Ddebug=false -Dc_args=-gline-tables-only -Dcpp_args=-gline-tables-only >/dev/null
    fi
    ninja -C "$dir" "${suites[@]}" "${targets[@]/#/tests/fuzz/}" ;;
  suites)
    printf '%s\n' "${suites[@]/#/$dir/}" ;;
  targets)
    printf '%s\n' "${targets[@]}" ;;
  env)
    shift; exec "$@" ;;
  fuzz)
    name=${2:?usage: scripts/sanitize.sh fuzz NAME [FLAGS...]}; shift 2
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$corpus" ] || { echo "no corpus $corpus" >&2; exit 2; }
    scratch=$(mktemp -d /tmp/nbm-fuzz.XXXXXX)
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$dir/fuzz-artifacts"
    rm -f "$dir/fuzz-artifacts/$name-"*
    # The mux decides within 24 bytes: longer inputs would only slow fuzz_first_bytes down.
    extra=()
    [ "$name" = fuzz_first_bytes ] && extra=(-max_len=64)
    rc=0
    "$dir/tests/fuzz/$name" -artifact_prefix="$dir/fuzz-artifacts/$name-" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" "$@" "$scratch" "$corpus" || rc=$?
    if [ "$rc" != 0 ]; then
      for f in "$dir/fuzz-artifacts/$name-"*; do
        [ -f "$f" ] && echo "!! input $f (base64): $(head -c 4096 "$f" | base64 -w0)"
      done
    fi
    exit "$rc" ;;
  *) echo "usage: scripts/sanitize.sh build|suites|targets|env CMD...|fuzz NAME [FLAGS...]" >&2; exit 2 ;;
esac
