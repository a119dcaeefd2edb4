#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + coverage) in build-fuzz/ and runs each
# for a bounded time on a copy of its seed corpus. Usage: test/fuzz/run.sh [seconds per target]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
CC=clang cmake -S . -B build-fuzz -DPLE_FUZZ=ON -DPLE_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_request fuzz_config fuzz_xray fuzz_telemetry
for t in request config xray telemetry; do
  work=build-fuzz/corpus_$t
  mkdir -p "$work"
  cp -n test/fuzz/corpus_$t/* "$work"/ 2>/dev/null || true
  echo "== fuzz_$t for ${secs}s"
  rc=0
  build-fuzz/fuzz_$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/ "$work" > build-fuzz/fuzz_$t.log 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY' build-fuzz/fuzz_$t.log || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_$t failed (exit $rc); see build-fuzz/fuzz_$t.log and build-fuzz/crash-*"
    tail -40 build-fuzz/fuzz_$t.log
    exit 1
  fi
done
