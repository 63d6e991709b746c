#!/usr/bin/env bash
# `make test-valgrind`: the black-box suite against a plain Debug build run under valgrind.
# Any memory error or definite leak in serve or worker makes that program exit 99, which the
# suite's fixtures report as an unclean exit. Arguments replace the default pytest arguments
# (tests/blackbox), e.g. `scripts/test-valgrind.sh tests/blackbox/test_ssrf.py -x`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${VALGRIND_BUILD:-$root/build-valgrind}"
jobs="$(nproc)"

command -v valgrind >/dev/null || { echo "valgrind is missing: scripts/deps.sh test" >&2; exit 2; }
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DIA_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target interview-api

# The wrapper the fixtures start instead of the program (IA_BIN). ffmpeg and ffprobe, started by
# the worker, are not traced: they are not our code.
wrapper="$build/interview-api-valgrind"
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
    --show-leak-kinds=definite --suppressions="$root/tests/valgrind.supp" \\
    --child-silent-after-fork=yes --trace-children=no --num-callers=30 \\
    "$build/interview-api" "\$@"
EOF
chmod +x "$wrapper"

[ $# -gt 0 ] || set -- "$root/tests/blackbox"
start=$(date +%s)
status=0
IA_BIN="$wrapper" IA_TEST_SLOW="${IA_TEST_SLOW:-8}" \
    /usr/bin/python3 -m pytest -q "$@" || status=$?
echo "test-valgrind: exit $status after $(( $(date +%s) - start )) s"
exit $status
