#!/usr/bin/env bash
# The demo: a narrated scenario run through Vigil's decision core, printing what each fix
# caused, the SMS the victim received and what the monitoring centre saw, and drawing the
# track, the zone, its buffer and where each alert fired to target/vigil-demo.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p vigil-sim -- demo --svg target/vigil-demo.svg "$@"
