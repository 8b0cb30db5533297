#!/usr/bin/env bash
# Every test Vigil has, as CI runs it: formatting, lints, unit and property tests, the
# functions against the local AWS emulator (moto, installed pinned into .local/venv on first
# use, started on free ports and stopped by the tests themselves), the end-to-end pipeline
# tests, every scenario in tests/scenarios, the fuzz targets over their corpus, cargo-deny
# (tools/deny.sh) and the CDK app's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "tools/test.sh: python3 is needed (for the moto emulator)" >&2; exit 2; }

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --locked --all-targets -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test --locked --workspace"
cargo test --locked --workspace
echo "== cargo deny (advisories, licences, bans, sources)"; ./tools/deny.sh
echo "== infra (CDK assertions, cdk synth, cfn-lint, checkov)"; ./infra/test.sh
