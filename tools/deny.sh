#!/usr/bin/env bash
# cargo-deny over Cargo.lock (deny.toml): advisories, licences, bans (duplicates reported),
# sources. Part of the test command.
#
# Installs cargo-deny 0.20.2 from crates.io into .local/cargo-deny on first use (a few minutes
# on two cores). The advisory database is fetched into .local/advisory-dbs when GitHub is
# reachable; otherwise the snapshot vendored in tools/deny/advisory-db (the advisories of the
# crates in Cargo.lock; its commit in SNAPSHOT; refreshed with tools/deny/refresh.sh) stands
# in, and the output says which was used.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.local/cargo-deny"
if [ ! -x "$tools/bin/cargo-deny" ]; then
  echo "== installing cargo-deny 0.20.2 into .local/cargo-deny"
  cargo install cargo-deny --version 0.20.2 --locked --root "$tools" --quiet
fi
deny="$tools/bin/cargo-deny"
# cargo-deny reads `cargo metadata` for every platform, so every crate Cargo.lock names must be
# in the registry cache, those of other targets (windows-sys, ...) included: a fresh machine
# has only what its builds fetched. Fetched from crates.io (pinned by Cargo.lock).
cargo fetch --locked --quiet
# cargo-deny opens its advisory database as a git repository and resets it to its head; where
# that folder is missing or not a repository, git's discovery walks up to this checkout, which
# it then reset (uncommitted work lost). The databases' folder is a repository of its own.
own_repository() {
  mkdir -p .local/advisory-dbs
  [ -d .local/advisory-dbs/.git ] || git -C .local/advisory-dbs init -q
}
own_repository
if timeout 60 "$deny" --log-level error fetch db >/dev/null 2>&1; then
  echo "== cargo deny: advisory database fetched from GitHub"
  offline=()
else
  echo "== cargo deny: GitHub unreachable; the vendored advisory snapshot $(cat tools/deny/advisory-db/SNAPSHOT)"
  # cargo-deny keeps the database of db-urls[0] in a folder named after the URL; ask it which.
  rm -rf .local/advisory-dbs
  own_repository
  target=$("$deny" --log-level error --offline --locked check advisories 2>&1 \
    | grep -o '\.local/advisory-dbs/advisory-db-[0-9a-f]*' | head -1 || true)
  if [ -z "$target" ]; then
    echo "tools/deny.sh: cannot tell where cargo-deny looks for the advisory database" >&2
    exit 2
  fi
  rm -rf "$target" && mkdir -p "$(dirname "$target")"
  cp -r tools/deny/advisory-db "$target"
  # Its own repository too (see own_repository), with the snapshot as its head.
  git -C "$target" init -q
  git -C "$target" add -A
  git -C "$target" -c user.name=vigil -c user.email=vigil@localhost commit -qm "RustSec snapshot $(cat tools/deny/advisory-db/SNAPSHOT)"
  offline=(--offline)
fi
"$deny" --log-level error "${offline[@]}" --locked check advisories licenses bans sources
