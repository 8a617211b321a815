-- wrk script for benchmarks.run: one request, sent over and over.
--   BENCH_METHOD        GET or POST (default GET)
--   BENCH_BODY          request body; sent as application/json when set
--   BENCH_MAX_REQUESTS  a thread stops after this many responses (bounds the count)
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then
    wrk.thread:stop()
  end
end
