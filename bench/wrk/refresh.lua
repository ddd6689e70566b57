-- Rotate refresh tokens: every request spends one token from this thread's pool and the
-- response's new refresh token goes back into it. bench/run hands each thread its own tokens
-- through setup(), more than the thread has connections, so the pool never runs dry unless
-- requests fail. A request made with an empty pool sends a token that cannot exist, which
-- wrk counts as a non-2xx response.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

local pool = {}

function init(args)
  local all = os.getenv("BENCH_REFRESH_TOKENS") or ""
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  local position = 0
  for token in string.gmatch(all, "[^,]+") do
    if position % count == index - 1 then
      table.insert(pool, token)
    end
    position = position + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local token = table.remove(pool) or "spent"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then
    table.insert(pool, token)
  end
end
