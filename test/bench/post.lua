-- wrk script: POSTs one realistic profile upload to /ingest, like a Pyroscope client, and prints
-- the run's figures as one JSON line (prefixed "BENCH_JSON ") for test/bench/bench.py.
--   BODY_FILE     the request body (bench.py writes folded text, multipart pprof, multipart JFR)
--   CONTENT_TYPE  its Content-Type
--   INGEST_QUERY  the query string after /ingest?
--   STOP_AFTER    optional: each thread stops after this many answers (a fixed request count)
-- Without BODY_FILE it sends BODY_BYTES (default 16384) bytes of "p", as it always did.
local body_file = os.getenv("BODY_FILE")
if body_file then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
else
  wrk.body = string.rep("p", tonumber(os.getenv("BODY_BYTES") or "16384"))
end
wrk.method = "POST"
wrk.path = "/ingest?" .. (os.getenv("INGEST_QUERY") or
  "name=bench.app%7Bfunction%3Dbench%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100")
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/octet-stream"
wrk.headers["User-Agent"] = "pyroscope-bench/wrk"

local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
if stop_after > 0 then
  -- Defining response() makes wrk parse answers; only the fixed-count runs pay for it.
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen >= stop_after then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
