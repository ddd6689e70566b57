-- POST the body in BENCH_BODY with the content type in BENCH_CONTENT_TYPE. With
-- BENCH_DELAY_MS set, each connection waits before every request, which caps the offered load
-- below the server's peak. The wait is drawn from an exponential distribution with that mean,
-- as for independent clients. A fixed wait would keep all connections in step, so every
-- request of a round would arrive at the same instant and wait for the others.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or ""
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
  or "application/x-www-form-urlencoded"

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (thread_number or 0))
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause and pause > 0 then
  function delay()
    return math.floor(-pause * math.log(1 - math.random()) + 0.5)
  end
end
