#!/usr/bin/env bash
# Kept for old instructions: the relay throughput run is now part of test/bench/bench.py, which
# measures wrk -> extension -> nginx beside wrk -> nginx, counts deliveries and checks for loss.
#   test/bench/quick_wrk.sh   ==   python3 test/bench/bench.py --quick
exec python3 "$(dirname "$0")/bench.py" --quick "$@"
