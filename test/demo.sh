#!/usr/bin/env bash
# The local demo: installs the dependencies, builds, and runs the whole product on this machine
# with no cloud account: a Lambda Extensions API emulator, the extension, a synthetic function
# that pushes pprof profiles to localhost:4040 during its invokes, and a recording remote.
# Set PYROSCOPE_REMOTE_ADDRESS (and credentials) to relay to a real Pyroscope server instead.
# The output of apt-get and cmake goes to build/demo-setup.log; the demo shows one line for it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
log=build/demo-setup.log
echo "installing Debian packages if missing (test/install-deps.sh) and building: output in $log"
if ! { bash test/install-deps.sh &&
       cmake -S . -B build &&
       cmake --build build -j"$(nproc)" --target pyroscope-lambda-extension; } >"$log" 2>&1; then
  echo "setup failed; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
exec python3 test/demo.py "$@"
