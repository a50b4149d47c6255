#!/usr/bin/env bash
# Runs every test suite against real SQLite files and a throwaway PostgreSQL, and prints the totals as
# one line "N passed, M failed" (test cases over all suites). Exit status 0 only if everything passed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NBM_TEST_PG_DSN:-}" ]; then
  exec scripts/pg_throwaway.sh "$0" "$@"
fi
export NBM_REQUIRE_PG=1
export NBM_TEST_TMPDIR=$(mktemp -d /tmp/nbm-tests.XXXXXX)
trap 'rm -rf "$NBM_TEST_TMPDIR"' EXIT
passed=0; failed=0; broken=()
for t in build/tests/*/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  name=$(basename "$t")
  log="$NBM_TEST_TMPDIR/$name.log"
  echo "== $name"
  timeout -k 10 600 "$t" --no-colors "$@" >"$log" 2>&1
  rc=$?
  summary=$(grep -E '^\[doctest\] test cases:' "$log" | tail -n1)
  p=$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$summary")
  f=$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$summary")
  if [ -z "$p" ] || [ -z "$f" ]; then
    # No summary: the binary crashed or hung up. Count it as one failure and show its output.
    cat "$log"; echo "!! $name exited with $rc and no summary"; failed=$((failed + 1)); broken+=("$name"); continue
  fi
  if [ "$f" != 0 ] || [ "$rc" != 0 ]; then cat "$log"; broken+=("$name"); fi
  [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
  echo "   $summary"
  passed=$((passed + p)); failed=$((failed + f))
done
if [ -x tests/e2e/run.sh ]; then
  echo "== e2e"
  out=$(timeout -k 10 600 tests/e2e/run.sh 2>&1); rc=$?
  echo "$out"
  p=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\1/p' <<<"$out" | tail -n1)
  f=$(sed -nE 's/^e2e: ([0-9]+) passed, ([0-9]+) failed$/\2/p' <<<"$out" | tail -n1)
  if [ -z "$p" ]; then failed=$((failed + 1)); broken+=(e2e); else
    passed=$((passed + p)); failed=$((failed + f)); [ "$rc" != 0 ] && [ "$f" = 0 ] && failed=$((failed + 1)); fi
fi
[ ${#broken[@]} -gt 0 ] && echo "failing suites: ${broken[*]}"
if [ $((passed + failed)) -eq 0 ]; then echo "no tests ran"; failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
