-- POST one fixed body with fixed headers, then print a one-line JSON summary.
-- BENCH_BODY names the body file; BENCH_HEADERS holds "Name: value" lines.
-- When BENCH_STREAM_CHUNKS is set, every answer must be an SSE stream carrying the
-- tokens [t00] .. [tNN] in order, at most one per event, and `[DONE]` (no drop, no merge).

local body_file = assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set")
local fh = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = fh:read("*a")
fh:close()
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

local chunks = tonumber(os.getenv("BENCH_STREAM_CHUNKS") or "")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good, bad, sample = 0, 0, ""
end

local markers = {}
for index = 0, (chunks or 0) - 1 do markers[index] = string.format("[t%02d]", index) end

-- Plain finds only (memchr speed), so the check costs the load core little: each token must
-- appear in order, and an event boundary must lie between two consecutive tokens.
local function stream_intact(body)
  if body:find("\r", 1, true) then body = body:gsub("\r", "") end
  local pos = 1
  for index = 0, chunks - 1 do
    local at = body:find(markers[index], pos, true)
    if not at then return false end
    if index > 0 then
      local boundary = body:find("\n\n", pos, true)
      if not boundary or boundary > at then return false end
    end
    pos = at + 5
  end
  return body:find("[t", pos, true) == nil and body:find("[DONE]", pos, true) ~= nil
end

if chunks then
  function response(status, headers, body)
    if status == 200 and stream_intact(body) then
      good = good + 1
    else
      bad = bad + 1
      if sample == "" then sample = status .. " " .. body:sub(1, 200) end
    end
  end
end

function done(summary, latency, requests)
  local good_total, bad_total, first_bad = 0, 0, ""
  for _, thread in ipairs(threads) do
    good_total = good_total + (thread:get("good") or 0)
    bad_total = bad_total + (thread:get("bad") or 0)
    if first_bad == "" then first_bad = thread:get("sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"streams_ok":%d,"streams_bad":%d,"bad_sample":"%s"}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    good_total, bad_total, (first_bad:gsub("[%c\"\\]", " "))))
end
