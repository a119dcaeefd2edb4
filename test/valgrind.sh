#!/usr/bin/env bash
# Runs the integration suites with every extension process under Valgrind memcheck, then sums
# the errors and leaks reported by all of them. Slow (each process runs ~20x slower), so it is
# not part of CI; run it after changes to memory handling.  Usage: test/valgrind.sh [suite ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "apt-get install valgrind"; exit 2; }
cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null
work=$(mktemp -d)
logs="$work/logs"; mkdir -p "$logs"
# The wrapper carries the binary's name: Lambda-Extension-Name is the basename of argv[0].
cat > "$work/pyroscope-lambda-extension" <<WRAP
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=98 \
  --log-file=$logs/vg.%p.log "$PWD/build/pyroscope-lambda-extension" "\$@"
WRAP
chmod +x "$work/pyroscope-lambda-extension"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(test_relay test_lifecycle test_retry test_limits test_faults test_tls)
cd test/integration
PLE_BINARY="$work/pyroscope-lambda-extension" PYTHONPATH=../support PLE_SKIP_NODE=1 \
  python3 -m unittest "${suites[@]}" > "$work/unittest.log" 2>&1 || true
grep -E '^(FAIL|ERROR):|^Ran |^OK|^FAILED' "$work/unittest.log" || true
cd ../..
procs=$(ls "$logs" | wc -l)
# With --quiet, a process with no error and no leak leaves an empty log.
dirty=$(find "$logs" -type f -size +0 | wc -l)
echo "valgrind: $procs extension processes, $dirty with errors or leaks"
find "$logs" -type f -size +0 | head -3 | xargs -r cat | head -80
rm -rf "$work"
