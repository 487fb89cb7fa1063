-- OperatorStore.claim: a Claim record. Take the claim unless an unexpired one exists (expiry by
-- the guard's clock; Redis drops the key a minute after, by its own).
local req = wire[2]  --: Claim
local key = base(req.agent) .. ':claim:' .. req.message_id
local held = redis.call('GET', key)
if held then
  local expires = tonumber(string.match(held, '^[^|]+'))
  if expires and expires > req.now then return 0 end
end
redis.call('SET', key, fmt(req.now + req.ttl_s) .. '|' .. req.value, 'EX', math.ceil(req.ttl_s) + 60)
return 1
