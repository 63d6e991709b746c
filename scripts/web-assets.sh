#!/usr/bin/env bash
# Installs the files of npm packages the service serves (Swagger UI for GET /docs) into
# <repo>/vendor/<package>/: tarballs pinned by version and sha256 in scripts/web-assets.lock,
# cached in ${IA_CACHE_DIR:-~/.cache/interview-api}/npm (shared with scripts/models.sh), manifest
# last. Does nothing when vendor/ matches the lock. Usage: scripts/web-assets.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/web-assets.lock
out=$root/vendor
cache=${IA_CACHE_DIR:-$HOME/.cache/interview-api}/npm
registry=${IA_NPM_REGISTRY:-https://registry.npmjs.org}

die() { echo "web-assets.sh: $*" >&2; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Fields of the lock's lines of one kind ("package" or "file"), comments dropped.
lock_lines() { grep -E "^$1[[:space:]]" "$lock" | sed 's/[[:space:]]\+/ /g'; }

pkg_field() { lock_lines package | awk -v p="$1" -v f="$2" '$2 == p { print $f }'; }

# The manifest: the lock's package lines, then each installed file with its sha256.
manifest() {
    lock_lines package
    local pkg file
    while read -r _ pkg file; do
        echo "file $pkg $file $(sha "$out/$pkg/$file" 2>/dev/null || echo missing)"
    done < <(lock_lines file)
}

up_to_date() {
    [ -f "$out/manifest.txt" ] && ! grep -q ' missing$' "$out/manifest.txt" &&
        [ "$(manifest)" = "$(cat "$out/manifest.txt")" ]
}

# The cache path of a locked package's tarball.
tgz_path() { echo "$cache/${1//\//+}-$(pkg_field "$1" 3).tgz"; }

# Puts the tarball of a locked package in the cache unless it is there and intact.
fetch() {
    local pkg=$1 ver sum url tgz rc=0
    ver=$(pkg_field "$pkg" 3)
    sum=$(pkg_field "$pkg" 4)
    tgz=$(tgz_path "$pkg")
    [ -f "$tgz" ] && [ "$(sha "$tgz")" = "$sum" ] && return 0
    mkdir -p "$cache"
    url=$registry/$pkg/-/${pkg##*/}-$ver.tgz
    echo "web-assets.sh: downloading $pkg@$ver" >&2
    curl -fsL --connect-timeout 15 --max-time 900 --retry 2 -o "$tgz.part" "$url" || rc=$?
    [ $rc -eq 0 ] || { rm -f "$tgz.part"; die "cannot download $url (curl exit $rc): is the npm registry reachable?"; }
    [ "$(sha "$tgz.part")" = "$sum" ] || { rm -f "$tgz.part"; die "$pkg@$ver: tarball sha256 differs from $lock"; }
    mv "$tgz.part" "$tgz"
}

main() {
    [ -f "$lock" ] || die "missing $lock"
    up_to_date && return 0
    command -v curl >/dev/null || die "curl is missing (scripts/deps.sh run installs it)"
    local pkg file
    work=$(mktemp -d "${TMPDIR:-/tmp}/ia-web-assets.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    while read -r _ pkg _ _; do
        fetch "$pkg"
        mkdir -p "$work/$pkg"
        tar -xzmf "$(tgz_path "$pkg")" -C "$work/$pkg" --strip-components=1 \
            $(lock_lines file | awk -v p="$pkg" '$2 == p { print "package/" $3 }')
    done < <(lock_lines package)
    mkdir -p "$out"
    rm -f "$out/manifest.txt"
    while read -r _ pkg file; do
        [ -f "$work/$pkg/$file" ] || die "$pkg has no $file"
        mkdir -p "$(dirname "$out/$pkg/$file")"
        mv -f "$work/$pkg/$file" "$out/$pkg/$file"
    done < <(lock_lines file)
    manifest > "$out/manifest.txt.tmp"
    mv -f "$out/manifest.txt.tmp" "$out/manifest.txt"
    echo "web-assets.sh: files ready in $out" >&2
}

main "$@"
