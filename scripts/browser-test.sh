#!/usr/bin/env bash
# Installs the npm packages of the real-browser test (playwright-core, axe-core), pinned by
# version and sha256 in scripts/browser-test.lock, whole into
# <repo>/tests/browser/node_modules/<package>/ (gitignored; no install scripts run, no browser
# downloaded). Tarballs come through scripts/npm-lock.sh's cache; the lock is copied in last, so
# a folder whose copy matches the lock is complete and nothing is done. Usage: scripts/browser-test.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/browser-test.lock
me=browser-test.sh
. "$root/scripts/npm-lock.sh"
out=$root/tests/browser/node_modules

[ -f "$lock" ] || die "missing $lock"
[ -f "$out/.lock" ] && cmp -s "$lock" "$out/.lock" && exit 0
command -v curl >/dev/null || die "curl is missing (scripts/deps.sh run installs it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ia-browser-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
while read -r _ pkg _ _; do
    fetch "$pkg"
    mkdir -p "$work/$pkg"
    tar -xzmf "$(tgz_path "$pkg")" -C "$work/$pkg" --strip-components=1
done < <(lock_lines package)
cp "$lock" "$work/.lock"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
chmod 755 "$work"
mv "$work" "$out"
trap - EXIT
echo "$me: packages ready in $out" >&2
