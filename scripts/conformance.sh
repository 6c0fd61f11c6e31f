#!/usr/bin/env bash
# Compose compatibility against compose-go's own test data (../shared/conformance/compose-go,
# see its README): runs every case through `difyctl config` and fails when fewer pass than the
# baseline in tests/conformance-baseline (raise it when more pass). Skips, saying so, when the
# cases are not there.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=../shared/conformance/compose-go
if [ ! -f "$cases/run.py" ]; then
  echo "conformance: skipped: $cases is not here"
  exit 0
fi
bin=${DIFYCTL:-$PWD/target/debug/difyctl}
[ -n "${DIFYCTL:-}" ] || cargo build --quiet --bin difyctl
# The last run's report, replaced by the next one (nothing piles up in /tmp).
out=$PWD/target/conformance
rm -rf "$out" && mkdir -p "$out"
CONFORMANCE_OUT=$out DIFYCTL=$bin python3 "$cases/run.py" >"$out/run.log" 2>&1 || true
total=$(grep '^TOTAL' "$out/run.log" || true)
if [ -z "$total" ]; then
  echo "conformance: the runner did not finish:" >&2
  tail -20 "$out/run.log" >&2
  exit 1
fi
read -r _ pass accepted _ <<<"$total"
passed=$((pass + accepted))
baseline=$(cat tests/conformance-baseline)
echo "conformance: $passed of 492 compose-go cases pass (baseline $baseline); report: $out/report.md"
if grep -q '^panics: \[.\+\]' "$out/run.log"; then
  grep '^panics' "$out/run.log" >&2
  exit 1
fi
if [ "$passed" -lt "$baseline" ]; then
  echo "conformance: fewer cases pass than before ($passed < $baseline):" >&2
  grep -E '^ +fail ' "$out/run.log" | head -40 >&2
  exit 1
fi
