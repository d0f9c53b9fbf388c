-- wrk script: POST /v1/events with BATCH events per request (1 = a single event object).
-- Environment: SLUICE_KEY (an events:publish key), BATCH (default 1).
local key = os.getenv("SLUICE_KEY")
local batch = tonumber(os.getenv("BATCH") or "1")
local pad = string.rep("x", 420) -- ~500-byte events, as DESIGN.md's storage figures

local function event(i)
  return string.format(
    '{"type":"order.created","entity_id":"ORD-%d","payload":{"n":%d,"note":"%s"}}',
    math.random(1, 1000000), i, pad)
end

local body
if batch == 1 then
  body = event(1)
else
  local parts = {}
  for i = 1, batch do parts[i] = event(i) end
  body = '{"events":[' .. table.concat(parts, ",") .. ']}'
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local errors = 0
response = function(status, headers, body)
  if status ~= 202 then errors = errors + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("non202=%d\n", summary.errors.status))
end
