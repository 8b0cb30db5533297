#!/usr/bin/env bash
# The CDK app's tests, offline: type check, CDK assertion tests, cdk-nag (AwsSolutions and
# Serverless packs), `cdk synth`, then cfn-lint and
# checkov on the synthesized template (zero failures; every accepted finding is waived in code
# next to its resource, with the reason).
#
# Installs what it needs on first use, pinned, into git-ignored folders: infra/node_modules
# (npm ci, from package-lock.json) and .local/venv-lint (tools/python/lint.txt: every package
# pinned with its hashes, installed with --require-hashes).
#
# The synth skips the Rust build (-c skipBundling=true; see docs/DEPLOY.md): the template is
# the deployable one except for the functions' code assets, and it carries a rule that makes
# it undeployable. VIGIL_INFRA_BUNDLE=1 synthesizes with the real arm64 build instead
# (needs cargo-lambda and zig on PATH; several minutes cold).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd .. && pwd)"
export CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true

command -v node >/dev/null || { echo "infra/test.sh: node (20 or later) is needed" >&2; exit 2; }

# npm ci only when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci (infra/node_modules)"
  npm ci --no-audit --no-fund --loglevel=error
fi

venv="$root/.local/venv-lint"
lock="$root/tools/python/lint.txt"
if ! cmp -s "$lock" "$venv/.vigil-installed" 2>/dev/null; then
  echo "== installing cfn-lint and checkov into .local/venv-lint (hashed lock)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$lock"
  cp "$lock" "$venv/.vigil-installed"
fi

# The console's web app is part of the template (a BucketDeployment of its build): built here
# when missing or older than its sources (pinned npm packages into its own node_modules).
web="$root/functions/console/web"
if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  echo "== npm ci (functions/console/web/node_modules)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f "$web/dist/app.js" ] || [ -n "$(find "$web/src" "$web/build.mjs" -newer "$web/dist/app.js" 2>/dev/null)" ]; then
  echo "== building the console (functions/console/web/dist)"
  (cd "$web" && node build.mjs)
fi

echo "== tsc --noEmit"
npx tsc --noEmit

echo "== CDK assertion tests"
# Node 20's test runner takes no globs: list the files.
node --import tsx --test --test-reporter=spec test/config.test.ts test/resources.test.ts test/stack.test.ts test/iam.test.ts test/forces.test.ts test/evidence.test.ts test/console.test.ts test/nag.test.ts

echo "== cdk synth (offline)"
out="$root/target/cdk.out"
synth=(npx cdk synth --no-notices --quiet --output "$out" -c stage=dev)
if [ "${VIGIL_INFRA_BUNDLE:-0}" = 1 ]; then
  command -v cargo-lambda >/dev/null || { echo "infra/test.sh: VIGIL_INFRA_BUNDLE=1 needs cargo-lambda on PATH (docs/DEPLOY.md)" >&2; exit 2; }
else
  synth+=(-c skipBundling=true)
fi
rm -rf "$out"
"${synth[@]}"
template="$out/Vigil-dev.template.json"
test -s "$template"

echo "== cfn-lint"
"$venv/bin/cfn-lint" --format parseable "$template"

echo "== checkov"
# Waivers live in the template's Metadata (checkov: skip, with the reason as comment); any
# failed check fails the run.
"$venv/bin/checkov" -f "$template" --framework cloudformation --skip-download --output json >"$out/checkov.json" || true
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!r.summary) { console.error("checkov produced no report"); process.exit(1); }
  const s = r.summary;
  console.log(`checkov: ${s.passed} passed, ${s.failed} failed, ${s.skipped} waived in the template`);
  for (const c of r.results.failed_checks) console.log(`  FAILED ${c.check_id} ${c.resource}: ${c.check_name}`);
  for (const c of r.results.skipped_checks) console.log(`  waived ${c.check_id} ${c.resource}: ${c.check_result.suppress_comment}`);
  process.exit(s.failed === 0 && s.parsing_errors === 0 ? 0 : 1);' "$out/checkov.json"
echo "infra/test.sh: all green"
