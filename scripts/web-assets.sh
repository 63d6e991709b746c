#!/usr/bin/env bash
# Installs the files of npm packages the service serves (Swagger UI for GET /docs) into
# <repo>/vendor/<package>/: tarballs pinned by version and sha256 in scripts/web-assets.lock,
# cached in ${IA_CACHE_DIR:-~/.cache/interview-api}/npm (shared with scripts/models.sh), manifest
# last. Does nothing when vendor/ matches the lock. Usage: scripts/web-assets.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/web-assets.lock
me=web-assets.sh
. "$root/scripts/npm-lock.sh"
out=$root/vendor

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
