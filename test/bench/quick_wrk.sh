#!/usr/bin/env bash
# A short relay throughput run: wrk -> extension (dev mode) -> nginx answering 200, beside the same
# wrk load against nginx directly (the ceiling of "read a request and answer it" here). Reports
# requests/s, latency, delivered uploads counted in nginx's access log, CPU time and peak RSS of
# the extension. Loopback only; every process is stopped at the end.
#   test/bench/quick_wrk.sh [seconds=5] [connections=16] [body bytes=16384]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}; conns=${2:-16}; export BODY_BYTES=${3:-16384}
bin=${PLE_BINARY:-build/pyroscope-lambda-extension}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; nginx -p "$work" -c nginx.conf -s stop 2>/dev/null; rm -rf "$work"' EXIT
sink_port=$((20000 + RANDOM % 10000)); relay_port=$((sink_port + 1))
cat > "$work/nginx.conf" <<NGX
worker_processes 1; error_log $work/error.log; pid $work/nginx.pid; daemon on;
events { worker_connections 1024; }
http { access_log $work/access.log; client_body_temp_path $work; client_max_body_size 16m;
  client_body_buffer_size 1m;
  server { listen 127.0.0.1:$sink_port; location / { return 200; } } }
NGX
nginx -p "$work" -c nginx.conf
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null && break; sleep 0.05; done

echo "== ceiling: wrk -> nginx directly ($secs s, $conns connections, $BODY_BYTES B bodies)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s test/bench/post.lua "http://127.0.0.1:$sink_port" | grep -E 'Requests/sec|50%|99%|Non-2xx|requests in'
: > "$work/access.log"; nginx -p "$work" -c nginx.conf -s reopen

PYROSCOPE_DEV_MODE=true PYROSCOPE_RELAY_PORT=$relay_port PYROSCOPE_LOG_LEVEL=warn \
  PYROSCOPE_REMOTE_ADDRESS=http://127.0.0.1:$sink_port "$bin" 2> "$work/ext.log" &
ext=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$relay_port) 2>/dev/null && break; sleep 0.02; done
echo "idle RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$ext/status), threads: $(awk '/Threads/{print $2}' /proc/$ext/status)"
echo "== relay: wrk -> extension -> nginx"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s test/bench/post.lua "http://127.0.0.1:$relay_port" | tee "$work/wrk.txt" | grep -E 'Requests/sec|50%|99%|Non-2xx|requests in'
read -r ut st < <(awk '{print $14, $15}' /proc/$ext/stat)
hwm=$(awk '/VmHWM/{print $2, $3}' /proc/$ext/status)
kill -TERM $ext; wait $ext || true
delivered=$(wc -l < "$work/access.log")
tck=$(getconf CLK_TCK)
echo "delivered at the sink: $delivered; extension CPU: $(( (ut + st) * 1000 / tck )) ms; peak RSS: $hwm"
grep -E 'shutdown summary' "$work/ext.log" || true
