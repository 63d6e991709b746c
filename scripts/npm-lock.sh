# Shared by scripts/models.sh and scripts/web-assets.sh (sourced, not run): npm tarballs pinned in
# a lock file ($lock: "package <name> <version> <sha256>" lines), fetched from the registry into a
# cache shared by both, checked by SHA-256. The sourcing script sets $lock and $me first.

cache=${IA_CACHE_DIR:-$HOME/.cache/interview-api}/npm
registry=${IA_NPM_REGISTRY:-https://registry.npmjs.org}

die() { echo "$me: $*" >&2; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Fields of the lock's lines of one kind, comments dropped.
lock_lines() { grep -E "^$1[[:space:]]" "$lock" | sed 's/[[:space:]]\+/ /g'; }

pkg_field() { lock_lines package | awk -v p="$1" -v f="$2" '$2 == p { print $f }'; }

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
    echo "$me: downloading $pkg@$ver" >&2
    curl -fsL --connect-timeout 15 --max-time 900 --retry 2 -o "$tgz.part" "$url" || rc=$?
    [ $rc -eq 0 ] || { rm -f "$tgz.part"; die "cannot download $url (curl exit $rc): is the npm registry reachable?"; }
    [ "$(sha "$tgz.part")" = "$sum" ] || { rm -f "$tgz.part"; die "$pkg@$ver: tarball sha256 differs from $lock"; }
    mv "$tgz.part" "$tgz"
}
