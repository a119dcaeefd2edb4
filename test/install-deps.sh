#!/usr/bin/env bash
# Installs what building and testing need, from Debian 12's packages. Idempotent and
# non-interactive: it runs apt-get only when a package is missing.
set -euo pipefail

PACKAGES=(
  gcc make cmake libc6-dev pkg-config ca-certificates
  libuv1-dev libcurl4-openssl-dev libssl-dev libjansson-dev node-llhttp
  python3 nodejs npm wrk openssl clang libclang-rt-14-dev
  awscli
  nginx-light
)

# nginx-light: the HTTP/2 + TLS 1.3 remote of test_http2.py and the benchmark's sinks.
# test/bench/bench.py needs more: the profilers (install-deps.sh --bench).
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(strace valgrind linux-perf)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # nodejs may come from another repository (a newer Node); any installed nodejs will do.
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm is bundled with Node from other sources; don't ask apt for it then.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
