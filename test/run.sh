#!/usr/bin/env bash
# One command: install the dependencies, build, and run every test (unit and integration).
#   test/run.sh              the normal build, in build/
#   test/run.sh --sanitize   the same suite built with -fsanitize=address,undefined, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

bash test/install-deps.sh

dir=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DPLE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # Leaks fail the run; the extension must free everything at exit.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # ASan's quarantine and redzones change memory figures: tests that measure RSS know.
  export PLE_SANITIZED=1
fi

cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure -j2 --timeout 600
