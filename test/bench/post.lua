-- wrk script: POSTs a profile-sized body to /ingest like a Pyroscope client.
-- BODY_BYTES (env) sets the size; default 16 KiB.
local size = tonumber(os.getenv("BODY_BYTES") or "16384")
wrk.method = "POST"
wrk.path = "/ingest?name=bench.app%7Bfunction%3Dbench%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("p", size)
