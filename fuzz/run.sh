#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 30) each. Installs cargo-fuzz when
# missing. cargo-fuzz needs unstable compiler flags (sanitizers); RUSTC_BOOTSTRAP lets the
# machine's one stable toolchain accept them, as no nightly toolchain can be fetched here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
  echo "== fuzz $t for ${seconds}s"
  cargo fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread '.*' panicked)" || true
  # cargo fuzz exits non-zero on a crash; PIPESTATUS keeps that failure.
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $t FAILED"; exit 1; }
done
echo "fuzzing: $(echo $targets | wc -w) targets, ${seconds}s each, no crash"
