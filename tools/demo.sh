#!/usr/bin/env bash
# The demo: starts the local stack (AWS emulator, mTLS MQTT broker, IoT rule bridge, the
# functions), replays a narrated scenario as the tag publishing over MQTT, prints the SMS the
# victim received (read back from the emulator) and what the monitoring centre saw, draws the
# track, zone, buffer and alerts to target/vigil-demo.svg, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --locked --quiet -p vigil-sim -- demo --svg target/vigil-demo.svg "$@"
