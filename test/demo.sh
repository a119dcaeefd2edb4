#!/usr/bin/env bash
# The local demo: installs the dependencies, builds, and runs the whole product on this machine
# with no cloud account: a Lambda Extensions API emulator, the extension, a synthetic function
# that pushes pprof profiles to localhost:4040 during its invokes, and a recording remote.
# Set PYROSCOPE_REMOTE_ADDRESS (and credentials) to relay to a real Pyroscope server instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target pyroscope-lambda-extension
exec python3 test/demo.py "$@"
