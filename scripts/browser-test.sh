#!/usr/bin/env bash
# Installs the npm packages of the real-browser test, pinned by version and sha256 in
# scripts/browser-test.lock, into <repo>/tests/browser/node_modules/<package>/ (whole packages,
# no install scripts run). Tarballs are cached in ${IA_CACHE_DIR:-~/.cache/interview-api}/npm
# (shared with scripts/models.sh and scripts/web-assets.sh); the lock is copied in last, so a
# folder whose copy matches the lock is complete and nothing is done. Usage: scripts/browser-test.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/browser-test.lock
out=$root/tests/browser/node_modules
cache=${IA_CACHE_DIR:-$HOME/.cache/interview-api}/npm
registry=${IA_NPM_REGISTRY:-https://registry.npmjs.org}

die() { echo "browser-test.sh: $*" >&2; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

packages() { grep -E '^package[[:space:]]' "$lock" | sed 's/[[:space:]]\+/ /g'; }

[ -f "$lock" ] || die "missing $lock"
[ -f "$out/.lock" ] && cmp -s "$lock" "$out/.lock" && exit 0
command -v curl >/dev/null || die "curl is missing (scripts/deps.sh run installs it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ia-browser-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
while read -r _ pkg ver sum; do
    tgz=$cache/${pkg//\//+}-$ver.tgz
    if ! [ -f "$tgz" ] || [ "$(sha "$tgz")" != "$sum" ]; then
        echo "browser-test.sh: downloading $pkg@$ver" >&2
        rc=0
        curl -fsL --connect-timeout 15 --max-time 900 --retry 2 -o "$tgz.part" \
            "$registry/$pkg/-/${pkg##*/}-$ver.tgz" || rc=$?
        [ $rc -eq 0 ] || { rm -f "$tgz.part"; die "cannot download $pkg@$ver (curl exit $rc): is the npm registry reachable?"; }
        [ "$(sha "$tgz.part")" = "$sum" ] || { rm -f "$tgz.part"; die "$pkg@$ver: tarball sha256 differs from $lock"; }
        mv "$tgz.part" "$tgz"
    fi
    mkdir -p "$work/$pkg"
    tar -xzmf "$tgz" -C "$work/$pkg" --strip-components=1
done < <(packages)

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work" "$out"
trap - EXIT
chmod 755 "$out"
cp "$lock" "$out/.lock"
echo "browser-test.sh: packages ready in $out" >&2
