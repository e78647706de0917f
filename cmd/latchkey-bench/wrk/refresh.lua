-- Refresh grants with rotation (RFC 6749 §6) driven by wrk, a C event loop,
-- to cross-check latchkey-bench's latencies (docs/BENCHMARKS.md, session 12).
--
--   wrk -t1 -cC -dD --latency -s refresh.lua ORIGIN -- TOKENS BASIC [PATH]
--
-- TOKENS: a file of refresh tokens, one per line (latchkey-bench
-- -tokens-out), at least C+1 of them: wrk calls request() once before the
-- run to check the script, which takes a token. BASIC: base64 of
-- "client_id:client_secret" for client_secret_basic. PATH: the token
-- endpoint's path (default /token).
--
-- The tokens form one queue: each request takes the oldest, each answer puts
-- the rotated token back, so every token is sent once. A refused token
-- (any status but 200) leaves the queue for good; a request that finds the
-- queue empty is sent with no usable token and is refused too. wrk counts
-- both under "Non-2xx or 3xx responses"; done() prints them by kind.
local queue, head, tail, auth, path = {}, 1, 0, nil, "/token"
refused, starved = 0, 0

function setup(thread)
  threads = threads or {}
  threads[#threads + 1] = thread
end

local function push(tok)
  tail = tail + 1
  queue[tail] = tok
end

local function pop()
  if head > tail then return nil end
  local tok = queue[head]
  queue[head] = nil
  head = head + 1
  return tok
end

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then push(line) end
  end
  auth = "Basic " .. args[2]
  path = args[3] or path
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local headers = {}

function request()
  local tok = pop()
  if tok == nil then
    starved = starved + 1
    tok = "none"
  end
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  headers["Authorization"] = auth
  return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. urlencode(tok))
end

function response(status, hdrs, body)
  if status ~= 200 then
    refused = refused + 1
    return
  end
  local tok = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if tok == nil then
    refused = refused + 1
    return
  end
  push(tok)
end

function done(summary, latency, requests)
  local r, s = 0, 0
  for _, t in ipairs(threads or {}) do
    r = r + (t:get("refused") or 0)
    s = s + (t:get("starved") or 0)
  end
  io.write(string.format("refused %d (status not 200, or no rotated token in the answer)\n", r))
  io.write(string.format("starved %d (sent with no token, too few for the connections; refused when answered)\n", s))
end
