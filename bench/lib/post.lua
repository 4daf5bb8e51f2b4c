-- wrk script for bench/run: POSTs a chat completion, rotating through a file of bearer
-- tokens (one a line), and prints one JSON line of results when done.
--
-- Environment:
--   BENCH_TOKENS  file of tokens (one a line); each thread starts at its own offset and
--                 walks the list in order, so every token is used in turn
--   BENCH_BODY    file holding the request body
--   BENCH_HEADERS extra headers, "Name: value" separated by "|" (optional)
--   BENCH_ONCE    if "1", each thread stops once it has had an answer for each of its
--                 share of the tokens (a pass that uses every token once over all threads)
--                 and writes "<answers> <non-200 answers>" to BENCH_OUT.<thread number>;
--                 wrk itself runs on until -d, so bench/run stops it when all are there
--   BENCH_OUT     file the JSON result line is written to

local tokens = {}
local body = ""
local extra = {}
local threads = {}
local counter = 0

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local once, me, nthreads, idx, sent, share, bad

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if #line > 0 then table.insert(tokens, line) end
  end
  body = read_all(os.getenv("BENCH_BODY"))
  local h = os.getenv("BENCH_HEADERS") or ""
  for pair in string.gmatch(h, "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
    if name then extra[name] = value end
  end
  -- `tid` is the global setup() gave this thread's Lua state.
  me = tonumber(rawget(_G, "tid")) or 1
  nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  -- Thread t owns tokens t, t+n, t+2n, ...; the warm-up pass sends each of them once.
  idx = ((me - 1) % #tokens) + 1
  once = os.getenv("BENCH_ONCE") == "1"
  sent = 0
  bad = 0
  share = 0
  for i = me, #tokens, nthreads do share = share + 1 end
end

function request()
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[idx],
    ["Content-Type"] = "application/json",
  }
  for k, v in pairs(extra) do headers[k] = v end
  idx = idx + nthreads
  if idx > #tokens then idx = ((me - 1) % #tokens) + 1 end
  return wrk.format("POST", nil, headers, body)
end

-- Defined only for the pass, since wrk reads answers into Lua only if this exists.
if os.getenv("BENCH_ONCE") == "1" then
function response(status, headers, body)
  sent = sent + 1
  if status ~= 200 then bad = bad + 1 end
  if once and sent == share then
    local f = assert(io.open(os.getenv("BENCH_OUT") .. "." .. me, "w"))
    f:write(sent .. " " .. bad .. "\n")
    f:close()
    wrk.thread:stop()
  end
end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local out = string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d}',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout)
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  f:write(out .. "\n")
  f:close()
end
