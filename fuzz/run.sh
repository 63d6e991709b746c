#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) into build-fuzz/ and runs each
# for FUZZ_SECONDS (default 60) on a working copy of its seed corpus. Exits non-zero when a
# target fails to build or finds a crash, a leak or a broken check; findings stay in
# build-fuzz/artifacts/<target>/ and are never copied into fuzz/corpus/ automatically.
#
# Usage: fuzz/run.sh [target ...]        (default: every target; names without "fuzz_")
# Environment: FUZZ_SECONDS (60), FUZZ_JOBS (1: targets run one after another),
#              CC_FUZZ (clang), FUZZ_BUILD_DIR (build-fuzz), FUZZ_BUILD_ONLY=1 (no runs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/src
out=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
cc=${CC_FUZZ:-clang}

cflags=(-g -O1 -std=c17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -fno-omit-frame-pointer
        -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
        -Wwrite-strings -Wformat=2 -Wcast-qual -Wundef -Wvla -I "$src")
read -r -a jansson <<<"$(pkg-config --cflags --libs jansson)"
read -r -a crypto <<<"$(pkg-config --cflags --libs libcrypto)"

# The source files each target needs besides its own; only these are compiled.
declare -A sources=(
    [netpolicy]="util/netpolicy.c"
    [http_range]="http/range.c util/str.c"
    [celery_message]="queue/celery.c core/alloc.c util/json_text.c util/os.c util/str.c
                      util/uuid.c"
    [ffprobe_json]="media/probe.c media/proc.c media/process.c media/report.c core/alloc.c
                    core/log.c util/crypto.c util/os.c util/str.c"
    [dotenv]="core/config.c core/alloc.c core/log.c util/crypto.c util/str.c"
    [submit_body]="api/submit_body.c core/alloc.c core/log.c core/error.c util/os.c util/str.c
                   util/uuid.c"
    [upload_parse]="api/upload_parse.c queue/celery.c core/alloc.c util/json_text.c util/os.c
                    util/str.c util/uuid.c"
    [s3_xml]="store/s3_xml.c store/s3_buf.c core/alloc.c util/str.c"
    [http_head]="http/head.c core/alloc.c util/str.c"
)
declare -A libs=(
    [celery_message]=jansson [ffprobe_json]="jansson crypto" [submit_body]=jansson [dotenv]=crypto
    [upload_parse]=jansson
)
declare -A ldflags=([http_head]="-levent")
# Longest input tried: ffprobe answers and Celery messages are a few KiB; heads at most 64 KiB.
declare -A max_len=([ffprobe_json]=16384 [celery_message]=8192 [s3_xml]=16384 [http_head]=8192)
all=(netpolicy http_range celery_message ffprobe_json dotenv submit_body upload_parse s3_xml
     http_head)

build() {
    local t=$1 files=() extra=() f l
    for f in ${sources[$t]}; do files+=("$src/$f"); done
    for f in ${ldflags[$t]:-}; do extra+=("$f"); done
    for l in ${libs[$t]:-}; do
        [[ $l == jansson ]] && extra+=("${jansson[@]}")
        [[ $l == crypto ]] && extra+=("${crypto[@]}")
    done
    "$cc" "${cflags[@]}" "$root/fuzz/fuzz_$t.c" "${files[@]}" "${extra[@]}" -o "$out/fuzz_$t"
}

# Runs one target; its output goes to build-fuzz/logs/<target>.log.
run() {
    local t=$1 corpus=$out/corpus/$1 art=$out/artifacts/$1/ opts=()
    mkdir -p "$corpus" "$art" "$out/logs"
    cp -n "$root/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
    [[ -f $root/fuzz/$t.dict ]] && opts+=(-dict="$root/fuzz/$t.dict")
    [[ -n ${max_len[$t]:-} ]] && opts+=(-max_len="${max_len[$t]}")
    echo "fuzz_$t: ${seconds}s, corpus $corpus"
    if "$out/fuzz_$t" "${opts[@]}" -max_total_time="$seconds" -detect_leaks=1 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art" "$corpus" \
        >"$out/logs/$t.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|Done)' "$out/logs/$t.log" | sed "s/^/  $t: /"
        return 0
    fi
    echo "fuzz_$t: FINDING, see $out/logs/$t.log and $art" >&2
    tail -n 40 "$out/logs/$t.log" >&2
    return 1
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ -n ${sources[$t]:-} ]] || { echo "unknown target: $t (known: ${all[*]})" >&2; exit 2; }
done
mkdir -p "$out"
for t in "${targets[@]}"; do build "$t"; done
[[ ${FUZZ_BUILD_ONLY:-0} == 1 ]] && exit 0

failed=0
pids=()
for t in "${targets[@]}"; do
    if [[ $jobs -le 1 ]]; then
        run "$t" || failed=1
        continue
    fi
    run "$t" &
    pids+=($!)
    if [[ ${#pids[@]} -ge $jobs ]]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
