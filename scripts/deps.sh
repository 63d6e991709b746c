#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing. Usage: deps.sh run|test|bench|fuzz
set -euo pipefail

run_pkgs="build-essential cmake pkg-config libevent-dev libhiredis-dev libcurl4-openssl-dev
  libjansson-dev libssl-dev ffmpeg redis-server libopencv-dev libwebrtc-audio-processing-dev libturbojpeg0-dev
  python3-onnx python3-numpy python3-yaml curl
  ca-certificates"
test_pkgs="$run_pkgs libcmocka-dev nginx-light python3-pytest python3-requests python3-celery
  python3-redis python3-jsonschema clang libclang-rt-14-dev valgrind iproute2 wrk hyperfine libdlib19.1
  python3-skimage python3-opencv opencv-data espeak-ng chromium python3-prometheus-client
  radosgw ceph-mon ceph-osd libfaketime"
bench_pkgs="$test_pkgs"

case "${1:-run}" in
    run) want=$run_pkgs ;;
    test) want=$test_pkgs ;;
    bench|fuzz) want=$bench_pkgs ;;
    *) echo "usage: $0 run|test|bench|fuzz" >&2; exit 2 ;;
esac

missing=()
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
