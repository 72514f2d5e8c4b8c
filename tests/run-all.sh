#!/usr/bin/env bash
# Runs every suite (after `make deps check`): builds the binaries the suites start,
# smoke-runs the benchmark so it cannot rot, runs all tests, and closes with one
# summary line over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
cargo build -j"$JOBS" --workspace --bins
echo "== benchmark smoke run (tiny counts; figures are meaningless here)"
cargo run -j"$JOBS" -q -p stevedore-tests --bin stevedore-bench -- --smoke
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -j"$JOBS" --workspace 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
