-- wrk script for bench/run's JIT row: agents mint writs at the token endpoint and use each
-- one k times. Each thread keeps a queue of writs to use: `response()` takes the
-- access_token out of a 200 token response and queues it k times; `request()` sends a
-- queued use if there is one, else the next mint. Mints and uses are counted apart.
--
-- Environment:
--   BENCH_JIT_K      uses per writ (0: mint only)
--   BENCH_JIT_CREDS  file of client credentials, one a line, each appended to the token
--                    request's form (an assertion: "client_assertion=..."; a secret:
--                    "client_id=...&client_secret=..."); a thread reads
--                    BENCH_JIT_CREDS.<thread number> if it exists, else the file itself
--   BENCH_JIT_ONCE   "1": each line is sent once (assertions: every jti is new); when a
--                    thread has sent all of its lines it stops and says so in the result
--                    ("exhausted"). Otherwise lines are sent in turn, round and round
--   BENCH_JIT_FORM   file holding the fixed part of the token request's form
--   BENCH_BODY       file holding the chat request's body (a use)
--   BENCH_HEADERS    extra headers of a use, "Name: value" separated by "|" (optional)
--   BENCH_JIT_SAVE   if set, each thread writes every writ it is given, one a line, to
--                    BENCH_JIT_SAVE.<thread number>
--   BENCH_OUT        file the JSON result line is written to

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local k, creds, ci, once, form, chat, use_headers, mint_headers, save
local queue, qhead, qtail = {}, 1, 0
-- Read by done() through thread:get, so globals of this thread's Lua state.
mints, uses, bad, exhausted, first_bad = 0, 0, 0, 0, ""

function init(args)
  local me = tonumber(rawget(_G, "tid")) or 1
  k = tonumber(os.getenv("BENCH_JIT_K") or "1")
  local path = os.getenv("BENCH_JIT_CREDS")
  local own = io.open(path .. "." .. me, "rb")
  if own then own:close(); path = path .. "." .. me end
  creds = {}
  for line in io.lines(path) do
    if #line > 0 then table.insert(creds, line) end
  end
  ci = 0
  once = os.getenv("BENCH_JIT_ONCE") == "1"
  form = read_all(os.getenv("BENCH_JIT_FORM"))
  chat = read_all(os.getenv("BENCH_BODY"))
  use_headers = { ["Content-Type"] = "application/json" }
  for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
    if name then use_headers[name] = value end
  end
  mint_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local s = os.getenv("BENCH_JIT_SAVE")
  if s and #s > 0 then save = assert(io.open(s .. "." .. me, "w")) end
end

function request()
  if qhead <= qtail then
    local writ = queue[qhead]
    queue[qhead] = nil
    qhead = qhead + 1
    use_headers["Authorization"] = "Bearer " .. writ
    return wrk.format("POST", "/v1/chat/completions", use_headers, chat)
  end
  ci = ci + 1
  if ci > #creds then
    if once then
      -- Out of fresh assertions: this thread stops rather than replay one (the request
      -- returned here is sent, its answer never read).
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
    end
    ci = 1
  end
  return wrk.format("POST", "/oauth2/token", mint_headers, form .. "&" .. creds[ci])
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if #first_bad == 0 then first_bad = status .. " " .. string.sub(body, 1, 300) end
    return
  end
  local writ = string.match(body, '"access_token"%s*:%s*"([^"]+)"')
  if not writ then
    uses = uses + 1
    return
  end
  mints = mints + 1
  if save then save:write(writ, "\n") end
  for _ = 1, k do
    qtail = qtail + 1
    queue[qtail] = writ
  end
end

function done(summary, latency, requests)
  local m, u, b, ex, fb = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    m = m + (tonumber(t:get("mints")) or 0)
    u = u + (tonumber(t:get("uses")) or 0)
    b = b + (tonumber(t:get("bad")) or 0)
    ex = ex + (tonumber(t:get("exhausted")) or 0)
    local f = t:get("first_bad")
    if #fb == 0 and f then fb = f end
  end
  fb = string.gsub(fb, '[%c"\\]', " ")
  local e = summary.errors
  local secs = summary.duration / 1e6
  local out = string.format(
    '{"requests":%d,"seconds":%.3f,"mints":%d,"uses":%d,"bad":%d,"exhausted":%d,' ..
    '"p50_us":%d,"p99_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"first_bad":"%s"}',
    summary.requests, secs, m, u, b, ex, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, fb)
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  f:write(out .. "\n")
  f:close()
end
