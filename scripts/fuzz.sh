#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each, one target at a time
# in one process, starting from its seed corpus fuzz/corpus/<target>/ and the inputs of
# fuzz/regressions/<target>/. New corpus entries go to fuzz/target/corpus/<target>/ (not
# committed); crashes to fuzz/artifacts/<target>/. Exits 1 if any target crashed.
#
# usage: scripts/fuzz.sh [SECONDS]   (default: $FUZZ_SECONDS, else 60)
#        FUZZ_TARGETS="apdu otp_input" scripts/fuzz.sh 30   runs only those targets
#
# The toolchain is stable: cargo-fuzz needs nightly flags (-Z sanitizer, -Z build-std is not
# used), which RUSTC_BOOTSTRAP=1 allows for this build only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-${FUZZ_SECONDS:-60}}
export RUSTC_BOOTSTRAP=1
# The fuzz crate has its own workspace and target directory (fuzz/target) unless told otherwise.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/fuzz/target}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: run 'make fuzz' (or cargo install --locked cargo-fuzz)" >&2
  exit 1
fi
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
echo "building fuzz targets: $(echo $targets)"
cargo fuzz build --debug-assertions --codegen-units 16 2>&1 | tail -n 3 || { echo "fuzz build failed" >&2; exit 1; }
failed=()
for t in $targets; do
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  dirs=("$work" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  echo "== $t: ${seconds}s"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  if cargo fuzz run --debug-assertions --codegen-units 16 "$t" "${dirs[@]}" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(#[0-9]+ *DONE|Done [0-9]+ runs)|stat::number_of_executed_units|cov: ' "$log" | tail -n 2 || true
  else
    echo "!! $t failed; the log is $log, the input under fuzz/artifacts/$t/:" >&2
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 8 >&2 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  echo "fix the bug, add the input to fuzz/regressions/<target>/ and a #[test] in the owning crate" >&2
  exit 1
fi
echo "fuzzing: no crashes in $(echo $targets | wc -w) targets, ${seconds}s each"
