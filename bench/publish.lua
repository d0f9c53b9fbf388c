-- wrk script: POST /v1/events with BATCH events per request (1 = a single event object).
-- Environment: SLUICE_KEY (an events:publish key), BATCH (default 1), ENTITIES (the domain
-- entities the events go to, ORD-1 .. ORD-<ENTITIES>; default 1000000). Each wrk thread
-- prepares 64 different bodies and sends them in turn.
-- Prints "non2xx=<count of answers other than 202>" at the end.
local key = os.getenv("SLUICE_KEY")
local batch = tonumber(os.getenv("BATCH") or "1")
local entities = tonumber(os.getenv("ENTITIES") or "1000000")
local pad = string.rep("x", 420) -- ~500-byte events, as DESIGN.md's storage figures

local function event(i)
  return string.format(
    '{"type":"order.created","entity_id":"ORD-%d","payload":{"n":%d,"note":"%s"}}',
    math.random(1, entities), i, pad)
end

local bodies = {}
local next_body = 1

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  for b = 1, 64 do
    if batch == 1 then
      bodies[b] = event(b)
    else
      local parts = {}
      for i = 1, batch do parts[i] = event(i) end
      bodies[b] = '{"events":[' .. table.concat(parts, ",") .. ']}'
    end
  end
end

request = function()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["Authorization"] = "Bearer " .. key}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("non2xx=%d\n", summary.errors.status))
end
