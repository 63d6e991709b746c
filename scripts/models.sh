#!/usr/bin/env bash
# Installs the analysis models into <repo>/models: npm tarballs pinned in scripts/models.lock,
# cached in ${IA_CACHE_DIR:-~/.cache/interview-api}/npm, converted, checked, manifest last.
# Does nothing when models/ already matches the lock. Usage: scripts/models.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/models.lock
out=$root/models
cache=${IA_CACHE_DIR:-$HOME/.cache/interview-api}/npm
registry=${IA_NPM_REGISTRY:-https://registry.npmjs.org}
py=/usr/bin/python3

die() { echo "models.sh: $*" >&2; exit 1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Fields of the lock's lines of one kind ("package" or "model"), comments dropped.
lock_lines() { grep -E "^$1[[:space:]]" "$lock" | sed 's/[[:space:]]\+/ /g'; }

pkg_field() { lock_lines package | awk -v p="$1" -v f="$2" '$2 == p { print $f }'; }

manifest() {
    local first=1 name pkg file sum
    printf '{"models": [\n'
    while read -r _ name pkg file sum; do
        [ $first -eq 1 ] || printf ',\n'
        first=0
        printf '  {"name": "%s", "package": "%s", "version": "%s", "file": "%s", "sha256": "%s"}' \
            "$name" "$pkg" "$(pkg_field "$pkg" 3)" "$file" "$sum"
    done < <(lock_lines model)
    printf '\n]}\n'
}

up_to_date() {
    [ -f "$out/manifest.json" ] || return 1
    [ "$(manifest)" = "$(cat "$out/manifest.json")" ] || return 1
    local name pkg file sum
    while read -r _ name pkg file sum; do
        [ -f "$out/$file" ] && [ "$(sha "$out/$file")" = "$sum" ] || return 1
    done < <(lock_lines model)
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
    echo "models.sh: downloading $pkg@$ver" >&2
    curl -fsL --connect-timeout 15 --max-time 900 --retry 2 -o "$tgz.part" "$url" || rc=$?
    [ $rc -eq 0 ] || { rm -f "$tgz.part"; die "cannot download $url (curl exit $rc): is the npm registry reachable?"; }
    [ "$(sha "$tgz.part")" = "$sum" ] || { rm -f "$tgz.part"; die "$pkg@$ver: tarball sha256 differs from $lock"; }
    mv "$tgz.part" "$tgz"
}

# Extracts members (paths under package/) of a fetched package; prints its package/ folder.
extract() {
    local pkg=$1 dir
    shift
    dir=$work/${pkg//\//+}
    mkdir -p "$dir"
    tar -xzf "$(tgz_path "$pkg")" -C "$dir" "${@/#/package/}"
    echo "$dir/package"
}

# Builds one model file into $stage.
build_model() {
    local name=$1 pkg=$2 file=$3 dir
    case $name in
    blazeface)
        dir=$(extract "$pkg" ONNX/face_detection_back_256x256_barracuda.onnx)
        cp "$dir/ONNX/face_detection_back_256x256_barracuda.onnx" "$stage/$file" ;;
    facemesh | iris | centernet | faceres)
        dir=$(extract "$pkg" "models/$name.json" "models/$name.bin")
        $py "$root/scripts/tfjs2onnx.py" "$dir/models/$name.json" "$stage/$file" \
            $(tfjs_args "$name") ;;
    canonical_face)
        dir=$(extract "$pkg" face_mesh_solution_packed_assets_loader.js \
            face_mesh_solution_packed_assets.data)
        $py "$root/scripts/canonical_face.py" "$dir" "$stage/$file" ;;
    *) die "no recipe for model $name" ;;
    esac
}

# Input size and outputs (TF.js tensor = ONNX name) of each converted graph.
tfjs_args() {
    case $1 in
    facemesh) echo "--size 192 192 --output Identity_2=mesh --output Identity_1=presence" ;;
    iris) echo "--size 64 64 --output Identity=iris" ;;
    centernet) echo "--size 512 512 --output tower_0/keypoints=heatmap --output tower_0/wh=wh" ;;
    faceres) echo "--size 224 224 --output global_pooling/Mean=embedding" ;;
    esac
}

main() {
    [ -f "$lock" ] || die "missing $lock"
    up_to_date && return 0
    command -v curl >/dev/null || die "curl is missing (scripts/deps.sh run installs it)"
    $py -c 'import onnx, numpy' 2>/dev/null || die "python3-onnx and python3-numpy are missing (scripts/deps.sh run)"
    mkdir -p "$out"
    work=$(mktemp -d "${TMPDIR:-/tmp}/ia-models.XXXXXX")
    stage=$work/stage
    mkdir -p "$stage"
    trap 'rm -rf "$work"' EXIT
    local name pkg file sum
    while read -r _ pkg _ _; do
        fetch "$pkg"
    done < <(lock_lines package)
    while read -r _ name pkg file sum; do
        build_model "$name" "$pkg" "$file"
        [ "$(sha "$stage/$file")" = "$sum" ] ||
            die "$file: sha256 $(sha "$stage/$file") differs from $lock (converter or package changed?)"
    done < <(lock_lines model)
    while read -r _ name pkg file sum; do
        mv -f "$stage/$file" "$out/$file"
    done < <(lock_lines model)
    manifest > "$out/manifest.json.tmp"
    mv -f "$out/manifest.json.tmp" "$out/manifest.json"
    echo "models.sh: models ready in $out" >&2
}

main "$@"
