#!/usr/bin/env bash
# The README's second command: set up, build and run the whole test suite.
#
#   launch/test.sh [extra `swift test` arguments, e.g. --filter ConfigTests]
#
# 1. launch/setup.sh: installs the missing system packages and checks the toolchain.
# 2. swift test -c release: builds everything (release mode: the numerical tests are far
#    too slow in debug) and runs every test (all XCTest), including the
#    multi-rank tests that start mpirun and the launcher test.
# 3. Prints one summary line; exits non-zero when the build or any test failed.
#
# The full output is also written to .build/launch-test.log. CI runs this script through
# .ci/run, so CI tests exactly what a newcomer runs.

set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
say() { printf '[test] %s\n' "$*"; }

start=$SECONDS
say "in $root"
say "step 1/2: system packages and toolchain (launch/setup.sh)"
launch/setup.sh || { say "FAILED: set-up failed"; exit 1; }

say "step 2/2: build and run the whole suite (swift test -c release)"
mkdir -p .build
log=.build/launch-test.log
say "+ swift test -c release $*"
swift test -c release "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

elapsed=$((SECONDS - start))
duration="$((elapsed / 60))m$((elapsed % 60))s"
# XCTest's last "Executed N tests, with M failures" line is the total over all suites.
# ("Executed 12 tests, with 0 failures (0 unexpected) in ..." or "... with 1 test skipped and 0 failures ...")
xctest="$(grep -E 'Executed [0-9]+ tests?, with .*[0-9]+ failures?' "$log" | tail -n1 | sed -E 's/^[[:space:]]+//; s/ \([0-9]+ unexpected\).*//' || true)"
failures="$(sed -E -n 's/.* ([0-9]+) failures?.*/\1/p' <<<"$xctest")"
# Swift Testing's summary ("Test run with N tests ... passed/failed ...").
testing="$(grep -E 'Test run with [0-9]+ tests?' "$log" | tail -n1 | sed -E 's/^[^T]*//' || true)"
[[ -n "$xctest" ]] || xctest="no XCTest summary"
[[ -n "$testing" ]] || testing="no Swift Testing summary"

if ((status == 0)) && [[ "${failures:-0}" == 0 ]] && ! grep -q 'Test run with .* failed' "$log"; then
    say "PASSED in $duration: XCTest: $xctest; Swift Testing: $testing (log: $log)"
    exit 0
fi
((status != 0)) || status=1
say "FAILED (exit $status) in $duration: XCTest: $xctest; Swift Testing: $testing (log: $log)"
grep -E 'error: |: error -\[|✘' "$log" | head -n 20 | sed 's/^/[test]   /'
exit "$status"
