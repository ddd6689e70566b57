-- POST the body in BENCH_BODY with the content type in BENCH_CONTENT_TYPE. With
-- BENCH_DELAY_MS set, each connection waits that many milliseconds before every request,
-- which caps the offered load below the server's peak.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or ""
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
  or "application/x-www-form-urlencoded"

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause and pause > 0 then
  function delay()
    return pause
  end
end
