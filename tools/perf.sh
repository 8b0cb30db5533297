#!/usr/bin/env bash
# Every performance figure in docs/PERFORMANCE.md, measured again, one part after another:
#
#   zone-lookup  the geohash index against brute force (criterion, vigil-core)
#   floor        the ingest handler's own CPU per fix on the in-memory ports (criterion)
#   cost         AWS requests per fix, ingest on the emulator (the COST lines)
#   local        the whole local pipeline: fix -> SMS latency, fixes/s against the emulator
#   cold-start   each function's arm64 zip size, and spawn -> first request for an event
#   tag-month    the cost per tag-month from counted requests and capacity units (vigil-sim cost)
#   scale        the zone-cells table built at 30k to 3M zones: item sizes, hot cells, read units
#   load         5,000 tags over MQTT through the whole local stack (release build; DynamoDB Local,
#                which needs Java 17): fixes/s against the emulator's ceiling, latency, exactly-once
#                SMS, CPU and memory per process; the plot in docs/images/load.svg
#
# `tools/perf.sh` runs them all (each part's time is in its section; first builds take longer);
# `tools/perf.sh floor cold-start` runs the parts named. A new figure is one more part here and
# its section in docs/PERFORMANCE.md.
#
# Installs what it needs on first use, pinned, into git-ignored folders, as the tests do: moto
# into .local/venv (the emulator, by the tools that start it), cargo-lambda and zig into
# .local/venv-cargo-lambda (by `vigil-sim cold-start`), each from its hashed lock in
# tools/python; and the Rust arm64 target for the zips.
set -euo pipefail
cd "$(dirname "$0")/.."
# The tools find the workspace (and .local) here, whichever checkout built them into a shared
# target directory.
export VIGIL_ROOT="$PWD"

command -v python3 >/dev/null || { echo "tools/perf.sh: python3 is needed (for the moto emulator and cargo-lambda)" >&2; exit 2; }

all=(zone-lookup floor cost local cold-start tag-month scale load)
if [ $# -gt 0 ]; then parts=("$@"); else parts=("${all[@]}"); fi

for part in "${parts[@]}"; do
  case "$part" in
    zone-lookup)
      echo "== zone lookup: cargo bench -p vigil-core --bench zone_lookup"
      cargo bench --locked -p vigil-core --bench zone_lookup ;;
    floor)
      echo "== the floor: cargo bench -p vigil-ingest --bench floor"
      cargo bench --locked -p vigil-ingest --bench floor ;;
    cost)
      echo "== AWS requests per fix: cargo test -p vigil-pipeline --test ingest_emulator cost"
      cargo test --locked -p vigil-pipeline --test ingest_emulator cost -- --nocapture ;;
    local)
      echo "== whole local pipeline: vigil-sim bench-local"
      cargo run --locked -p vigil-sim -- bench-local ;;
    cold-start)
      rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu
      echo "== cold start and size: vigil-sim cold-start"
      cargo run --locked -p vigil-sim -- cold-start ;;
    tag-month)
      echo "== cost per tag-month: vigil-sim cost"
      cargo run --locked -p vigil-sim -- cost ;;
    scale)
      echo "== the scale model's cell items: cargo test -p vigil-aws --test cell_items -- --ignored"
      cargo test --locked -p vigil-aws --test cell_items -- --ignored --nocapture ;;
    load)
      echo "== fleet load run: vigil-sim load (release build)"
      cargo run --locked --release -p vigil-sim -- load --svg docs/images/load.svg ;;
    *)
      echo "tools/perf.sh: no part '$part' (parts: ${all[*]})" >&2; exit 2 ;;
  esac
done
