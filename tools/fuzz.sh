#!/usr/bin/env bash
# The long fuzz run (docs/FUZZING.md): every target in fuzz/ under libFuzzer, coverage-guided,
# for a number of executions each (default 10 million), one after the other.
#
#   tools/fuzz.sh                  # all targets, 10M executions each
#   tools/fuzz.sh wire 1000000     # one target, 1M executions
#
# Needs a nightly toolchain (rustup) for the sanitizer flags; installs cargo-fuzz 0.13.1 from
# crates.io into .local/cargo-fuzz on first use. New corpus entries go to
# .local/fuzz-corpus/<target> (the seeds in fuzz/corpus/<target> are read, never written);
# a crash is written to fuzz/artifacts/<target>/ and stops the run with a non-zero status:
# add the input to fuzz/corpus/<target>/ with the fix, and the test command replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
rustup toolchain list | grep -q '^nightly' || {
  echo "tools/fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2; exit 2; }
tools="$root/.local/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz 0.13.1 into .local/cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.1 --locked --root "$tools"
fi
export PATH="$tools/bin:$PATH"
# The release profile is tuned for small Lambda binaries (fat LTO, one codegen unit, opt-level
# "s"): for fuzzing, fast builds and fast code with overflow checks and debug assertions.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
targets=(wire rule_event iot_sql scenario)
runs=10000000
if [ $# -ge 1 ]; then targets=("$1"); fi
if [ $# -ge 2 ]; then runs="$2"; fi
for t in "${targets[@]}"; do
  mkdir -p ".local/fuzz-corpus/$t"
  echo "== $t: $runs executions"
  start=$(date +%s)
  cargo +nightly fuzz run "$t" --features libfuzzer -O --debug-assertions \
    ".local/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
    -runs="$runs" -max_len=8192 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    2> ".local/fuzz-$t.log" || { tail -40 ".local/fuzz-$t.log"; exit 1; }
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done' ".local/fuzz-$t.log" || true
  echo "   $(( $(date +%s) - start )) s, corpus $(ls ".local/fuzz-corpus/$t" | wc -l) entries"
done
