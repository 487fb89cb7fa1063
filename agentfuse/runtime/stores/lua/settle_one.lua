-- One settlement `s` (a Settlement record), as Store.settle. Returns nil for an unknown or
-- settled reservation, else a Settled record: its time, the action's and run's failures, the
-- breaker before (its hash fields) and the breaker's state after.
local function settle_one(s)  --: Settlement
  local me = base(s.agent)
  local lk = me .. ':ledger:' .. s.run_id
  local rid, outcome = s.reservation_id, s.outcome
  local entry = redis.call('HGET', lk, rid)
  if not entry or string.sub(entry, 1, 2) ~= 'u|' then return nil end
  local now = clock_now(s.now)
  local latest = latest_of(me)
  if latest > now then now = latest end
  local parts = {}
  for p in string.gmatch(entry, '[^|]+') do table.insert(parts, p) end
  local estimate, etokens = estimate_of(parts[2])
  local day_key, minute = parts[3], parts[4]
  local cost, tokens = s.cost_micros, etokens
  if s.tokens then tokens = s.tokens end
  local failed = outcome == 'failure'
  redis.call('HSET', lk, rid, 's|' .. parts[2] .. '|' .. int(cost) .. ':' .. int(tokens) .. '|' .. outcome .. '|'
    .. parts[5])
  local cur_id, cur_agent, depth = s.run_id, s.agent, 0
  while cur_id and depth <= 1000 do
    local key = base(cur_agent) .. ':run:' .. cur_id
    redis.call('HINCRBY', key, 'reserved', 0 - estimate)
    redis.call('HINCRBY', key, 'spent', cost)
    if etokens ~= 0 then redis.call('HINCRBY', key, 'treserved', 0 - etokens) end
    if tokens ~= 0 then redis.call('HINCRBY', key, 'tspent', tokens) end
    if depth == 0 and failed then redis.call('HINCRBY', key, 'failures', 1) end
    depth = depth + 1
    local up = redis.call('HMGET', key, 'parent', 'pagent')
    cur_id, cur_agent = up[1], up[2]
  end
  redis.call('DECR', me .. ':open')
  local dk = me .. ':day:' .. day_key
  if redis.call('EXISTS', dk) == 1 then
    redis.call('HINCRBY', dk, 'reserved', 0 - estimate)
    redis.call('HINCRBY', dk, 'spent', cost)
    if etokens ~= 0 then redis.call('HINCRBY', dk, 'treserved', 0 - etokens) end
    if tokens ~= 0 then redis.call('HINCRBY', dk, 'tspent', tokens) end
  end
  add_minute(me .. ':minutes', minute, cost - estimate)
  if tokens ~= etokens then add_minute(me .. ':tminutes', minute, tokens - etokens) end
  local action_failures, run_failures = 0, 0
  if failed then
    action_failures = redis.call('HINCRBY', me .. ':attempts:' .. s.run_id, s.action, 1)
    run_failures = tonumber(redis.call('HGET', me .. ':run:' .. s.run_id, 'failures'))
  end
  -- the breaker, as breaker.after_call
  local bk = me .. ':breaker:' .. s.breaker.key
  local b = redis.call('HMGET', bk, 'state', 'failures', 'opened', 'probe', 'probe_exp')
  local state, bfail = b[1] or 'closed', tonumber(b[2] or '0')
  local after = state
  local function open_breaker(failures)
    redis.call('DEL', bk)
    redis.call('HSET', bk, 'state', 'open', 'failures', failures, 'opened', fmt(now))
    after = 'open'
  end
  local function close_breaker()  -- kept, closed: the operator's list shows every breaker touched
    redis.call('DEL', bk)
    redis.call('HSET', bk, 'state', 'closed', 'failures', 0)
    after = 'closed'
  end
  if state == 'half_open' and b[4] == rid then
    if outcome == 'success' then close_breaker()
    elseif failed and s.breaker_counts then open_breaker(bfail)
    else redis.call('HDEL', bk, 'probe', 'probe_exp') end
  elseif state == 'closed' and s.breaker_counts then
    if outcome == 'success' then
      if bfail ~= 0 then close_breaker() end
    elseif failed then
      bfail = bfail + 1
      if bfail >= s.breaker.failure_threshold then open_breaker(bfail)
      else redis.call('HSET', bk, 'state', 'closed', 'failures', bfail) end
    end
  end
  if s.halt then redis.call('HSET', me .. ':halts', s.halt.run_id, s.halt.text) end
  return Settled({now = fmt(now), action_failures = action_failures, run_failures = run_failures,
    state = b[1], failures = b[2], opened = b[3], probe = b[4], probe_exp = b[5], after = after})
end
