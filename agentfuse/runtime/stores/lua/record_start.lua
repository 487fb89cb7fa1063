-- OperatorStore.record_start: a Start record. One process start (once per host|pid in the
-- window) and the restart guard, as agentfuse.runtime.stores.base.check_start.
local req = wire[2]  --: Start
local me = base(req.agent)
local now, window = req.now, req.window_s
local starts = me .. ':starts'
redis.call('ZREMRANGEBYSCORE', starts, '-inf', fmt(now - window))
redis.call('ZADD', starts, 'NX', fmt(now), req.process)
redis.call('EXPIRE', starts, math.ceil(window) + 60)
redis.call('SADD', prefix .. ':agents', req.agent)
local count = redis.call('ZCARD', starts)
local until_at = tonumber(redis.call('GET', me .. ':restart_cooldown') or '')
if until_at and now < until_at then return {count, fmt(until_at), 0} end
if count > req.max_starts then
  until_at = now + req.cooldown_s
  redis.call('SET', me .. ':restart_cooldown', fmt(until_at))
  return {count, fmt(until_at), 1}
end
return {count, '', 0}
