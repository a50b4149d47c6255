#!/usr/bin/env bash
# Runs every test suite against real SQLite files and a throwaway PostgreSQL, and prints the totals as
# one line "N passed, M failed" (test cases over all suites). Exit status 0 only if everything passed.
# Then the sanitizer build (scripts/sanitize.sh): the unit and store suites again under
# AddressSanitizer + UndefinedBehaviorSanitizer ("== asan/<suite>", their cases counted again), and
# each fuzz target for NBM_FUZZ_SECONDS (default 15) over its committed corpus ("== fuzz/<target>",
# one test case each). NBM_SKIP_SANITIZE=1 skips both.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NBM_TEST_PG_DSN:-}" ]; then
  exec scripts/pg_throwaway.sh "$0" "$@"
fi
export NBM_REQUIRE_PG=1
export NBM_REQUIRE_TMUX=1 # install-deps.sh --test installs tmux: the console test must run
export NBM_TEST_TMPDIR=$(mktemp -d /tmp/nbm-tests.XXXXXX)
trap 'rm -rf "$NBM_TEST_TMPDIR"' EXIT
passed=0; failed=0; broken=()

# run_suite <binary> <name> [runner...]: one doctest binary, its cases added to the totals.
run_suite() {
  local t=$1 name=$2; shift 2
  local log="$NBM_TEST_TMPDIR/${name//\//_}.log"
  echo "== $name"
  local t0=$SECONDS
  timeout -k 10 600 "$@" "$t" --no-colors "${test_args[@]}" >"$log" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  local summary p f
  summary=$(grep -E '^\[doctest\] test cases:' "$log" | tail -n1)
  p=$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$summary")
  f=$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$summary")
  if [ -z "$p" ] || [ -z "$f" ]; then
    # No summary: the binary crashed or hung up. Count it as one failure and show its output.
    cat "$log"; echo "!! $name exited with $rc and no summary"; failed=$((failed + 1)); broken+=("$name"); return
  fi
  # A sanitizer report after the summary (a leak at exit) shows as a non-zero exit status.
  if [ "$f" != 0 ] || [ "$rc" != 0 ]; then cat "$log"; broken+=("$name"); fi
  [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
  echo "   $summary (${took} s)"
  passed=$((passed + p)); failed=$((failed + f))
}

test_args=("$@")
for t in build/tests/*/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  run_suite "$t" "$(basename "$t")"
done
if [ -x tests/e2e/run.sh ]; then
  echo "== e2e"
  t0=$SECONDS
  out=$(timeout -k 10 600 tests/e2e/run.sh 2>&1); rc=$?
  echo "$out"
  echo "   (shell e2e: $((SECONDS - t0)) s)"
  p=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\1/p' <<<"$out" | tail -n1)
  f=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\2/p' <<<"$out" | tail -n1)
  if [ -z "$p" ]; then failed=$((failed + 1)); broken+=(e2e); else
    passed=$((passed + p)); failed=$((failed + f)); [ "$rc" != 0 ] && [ "$f" = 0 ] && failed=$((failed + 1)); fi
fi

if [ "${NBM_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (build-san: clang, ASan + UBSan, libFuzzer)"
  start=$SECONDS
  if ! scripts/sanitize.sh build >"$NBM_TEST_TMPDIR/san-build.log" 2>&1; then
    tail -n 50 "$NBM_TEST_TMPDIR/san-build.log"; echo "!! sanitizer build failed"
    failed=$((failed + 1)); broken+=(sanitizer-build)
  else
    echo "   built in $((SECONDS - start)) s"
    for t in $(scripts/sanitize.sh suites); do
      run_suite "$t" "asan/$(basename "$t")" scripts/sanitize.sh env
    done
    secs=${NBM_FUZZ_SECONDS:-15}
    for name in $(scripts/sanitize.sh targets); do
      echo "== fuzz/$name (${secs} s over tests/fuzz/corpus/${name#fuzz_})"
      log="$NBM_TEST_TMPDIR/fuzz_$name.log"
      if timeout -k 10 $((secs + 120)) scripts/sanitize.sh fuzz "$name" -max_total_time="$secs" \
        >"$log" 2>&1; then
        echo "   passed: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs, 0 crashes"
        passed=$((passed + 1))
      else
        tail -n 60 "$log"; echo "!! fuzz/$name found a crash (input above)"
        failed=$((failed + 1)); broken+=("fuzz/$name")
      fi
    done
  fi
fi

[ ${#broken[@]} -gt 0 ] && echo "failing suites: ${broken[*]}"
if [ $((passed + failed)) -eq 0 ]; then echo "no tests ran"; failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
