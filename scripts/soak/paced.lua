-- make soak: wrk paced to a fixed rate.  Every connection waits SOAK_DELAY_MS
-- between its requests (wrk's delay()), so the rate is connections * 1000 /
-- delay whatever the server could take.  Paths rotate over fixed routes,
-- templated ids (/users/:id with fresh numbers) and a POST with a body.
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "2")
local n = 0

function delay()
  return delay_ms
end

function request()
  n = n + 1
  local k = n % 10
  if k == 0 then
    return wrk.format("POST", "/echo", nil, string.rep("x", 512))
  elseif k == 1 then
    return wrk.format("GET", "/status/503")
  elseif k <= 5 then
    return wrk.format("GET", "/users/" .. math.random(1, 1000000))
  end
  return wrk.format("GET", "/")
end
