#!/usr/bin/env bash
# Regenerates the hashed Python lock files from their .in files: every package the project's
# scripts install from PyPI, pinned with the SHA-256 of its files, so `pip install
# --require-hashes -r <lock>` installs exactly what was reviewed (issue 16.14).
#
#   tools/python/lock.sh            # all of moto.txt, cargo-lambda.txt, lint.txt
#   tools/python/lock.sh moto       # one
#
# Uses pip-tools 7.7.0 in .local/venv-piptools (git-ignored). Resolved for this machine's
# python3 (3.11): run it with the interpreter the tests use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.local/venv-piptools"
if [ ! -x "$venv/bin/pip-compile" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pip-tools==7.7.0
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(moto cargo-lambda lint)
cd "$here"
for name in "${names[@]}"; do
  echo "== $name.in -> $name.txt"
  "$venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --output-file "$name.txt" "$name.in"
done
