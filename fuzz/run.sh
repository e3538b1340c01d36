#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 30) each. Installs cargo-fuzz when
# missing. cargo-fuzz needs unstable compiler flags (coverage, sanitizers); RUSTC_BOOTSTRAP
# lets the machine's one stable toolchain accept them, as no nightly can be fetched here.
# FUZZ_SANITIZER (default none): the targets are safe Rust validators, where what the
# fuzzer finds is a panic, and panics are caught without a sanitizer; `address` builds
# take several minutes longer (set it for long runs that reach C code such as SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
  echo "== fuzz $t for ${seconds}s"
  log=$(mktemp)
  status=0
  # The first directory collects what the run finds (not committed); the others seed it:
  # a few hand-made inputs, and the project's real files for the file-format targets.
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds+=("fuzz/seeds/$t")
  case "$t" in
    inventory_file) seeds+=(examples) ;;
    indicator_catalogue) seeds+=(referentials) ;;
  esac
  cargo fuzz run -s "$sanitizer" "$t" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread '.*' panicked)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz target $t FAILED (exit $status)"
    exit 1
  fi
  rm -f "$log"
done
echo "fuzzing: $(echo $targets | wc -w) targets, ${seconds}s each, no crash"
