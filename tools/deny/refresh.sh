#!/usr/bin/env bash
# Refreshes tools/deny/advisory-db from a RustSec advisory-db checkout (git clone
# https://github.com/rustsec/advisory-db): the advisories of the crates in Cargo.lock, the
# licence and support.toml, and the commit in SNAPSHOT.
#   tools/deny/refresh.sh /path/to/advisory-db
set -euo pipefail
src="${1:?usage: tools/deny/refresh.sh /path/to/advisory-db}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/advisory-db"
rm -rf "$out" && mkdir -p "$out/crates"
for crate in $(sed -n 's/^name = "\(.*\)"$/\1/p' "$root/Cargo.lock" | sort -u); do
  if [ -d "$src/crates/$crate" ]; then cp -r "$src/crates/$crate" "$out/crates/"; fi
done
cp "$src/LICENSE.txt" "$src/support.toml" "$out/"
git -C "$src" rev-parse HEAD > "$out/SNAPSHOT"
echo "$(find "$out/crates" -name '*.md' | wc -l) advisories of $(ls "$out/crates" | wc -l) crates, snapshot $(cat "$out/SNAPSHOT")"
