-- Store.gate: a GateRequest record. Applies its deferred settlements, then decides as
-- agentfuse.runtime.decisions.decide_gate and the breaker rules, and reserves. An allowed call
-- gets a GateAdmitted record as one bulk string; a refusal returns, as JSON, the state it was
-- decided on, for the Python rules to explain it (redis_records.gate_snapshot).
local req = wire[2]  --: GateRequest
local agent, run_id, rid, action = req.agent, req.run_id, req.reservation_id, req.action
local me = base(agent)
if store.pinned then  -- the books this process checked at start must still be there
  local found = redis.call('HGET', me .. ':identity', 'id')
  if found ~= store.pinned then return {'identity', found or ''} end
end
for _, s in ipairs(req.settle_first) do settle_one(s) end
local estimate, etokens = req.estimate_micros, req.estimate_tokens
local now = clock_now(req.now)
local day_key, minute = req.day_key, req.minute
if not store.client_clock then minute = math.floor(now / 60) end
local latest_at, latest_day = latest_of(me)
if now < latest_at then  -- the clock went back: as decisions.effective_time
  now = latest_at
  minute = math.max(minute, math.floor(latest_at / 60))
  if before(day_key, latest_day) then day_key = latest_day end
end
local breaker, rate = req.breaker, req.rate_limit  --: BreakerSpec, RateLimitSpec
local daily_cap, hourly_cap = req.daily_cap_micros, req.hourly_cap_micros
local daily_tcap, hourly_tcap = req.daily_token_cap, req.hourly_token_cap
-- the strictest daily and hourly caps (money, then tokens) any policy declared for the agent:
-- {cap, policy}; a declaration is 'daily|hourly|declared_at|daily tokens|hourly tokens'
local declared = {{false, ''}, {false, ''}, {false, ''}, {false, ''}}
local caps = redis.call('HGETALL', me .. ':caps')
for i = 1, #caps, 2 do
  local policy, fields = caps[i], {}
  for piece in string.gmatch(caps[i + 1] .. '|', '([^|]*)|') do table.insert(fields, piece) end
  local values = {fields[1], fields[2], fields[4], fields[5]}
  for k = 1, 4 do
    local v, best = tonumber(values[k] or ''), declared[k]
    if v and (not best[1] or v < best[1] or (v == best[1] and before(policy, best[2]))) then
      declared[k] = {v, policy}
    end
  end
end
if declared[1][1] and (not daily_cap or declared[1][1] < daily_cap) then daily_cap = declared[1][1] end
if declared[2][1] and (not hourly_cap or declared[2][1] < hourly_cap) then hourly_cap = declared[2][1] end
if declared[3][1] and (not daily_tcap or declared[3][1] < daily_tcap) then daily_tcap = declared[3][1] end
if declared[4][1] and (not hourly_tcap or declared[4][1] < hourly_tcap) then hourly_tcap = declared[4][1] end

-- read: the run chain, halts, breaker, rate limit, windows, attempts
local chain = {}
local cur_id, cur_agent = run_id, agent
while cur_id do
  local row = redis.call('HMGET', base(cur_agent) .. ':run:' .. cur_id, unpack(RUN_FIELDS))
  if not row[4] then
    if #chain == 0 then return {'norun'} end
    break
  end
  table.insert(chain, {id = cur_id, agent = cur_agent, cap = tonumber(row[3] or ''), started = tonumber(row[4]),
    spent = tonumber(row[5]), reserved = tonumber(row[6]), steps = tonumber(row[7]),
    failures = tonumber(row[8]), tcap = tonumber(row[9] or ''), tspent = tonumber(row[10]) or 0,
    treserved = tonumber(row[11]) or 0, row = row})
  if #chain > 1000 then return redis.error_reply('run chain of ' .. run_id .. ' is cyclic') end
  cur_id, cur_agent = row[1], row[2]
end
local halts = {}
local h = redis.call('HGET', me .. ':halts', '')
if h then table.insert(halts, {agent = agent, run_id = '', text = h}) end
for _, run in ipairs(chain) do
  h = redis.call('HGET', base(run.agent) .. ':halts', run.id)
  if h then table.insert(halts, {agent = run.agent, run_id = run.id, text = h}) end
end
local bk = me .. ':breaker:' .. breaker.key
local b = redis.call('HMGET', bk, 'state', 'failures', 'opened', 'probe', 'probe_exp')
local rk = rate and (me .. ':rate:' .. rate.action)
local r = {false, false}
if rate then r = redis.call('HMGET', rk, 'adm', 'cool') end
local dk = me .. ':day:' .. day_key
local d = redis.call('HMGET', dk, 'spent', 'reserved', 'tspent', 'treserved')
local day_used = (tonumber(d[1]) or 0) + (tonumber(d[2]) or 0)
local day_tokens = (tonumber(d[3]) or 0) + (tonumber(d[4]) or 0)
local mk = me .. ':minutes'
local hour_used, hour_slide = hour_window(mk, minute)
local tmk = me .. ':tminutes'
local hour_tokens, thour_slide = hour_window(tmk, minute)
local attempts = tonumber(redis.call('HGET', me .. ':attempts:' .. run_id, action) or '0')

-- a refusal returns the state it was decided on, for the Python rules to explain it
local function refuse(verdict)
  local runs = {}
  for _, scope in ipairs(chain) do
    local run = {run_id = scope.id, agent = scope.agent}
    for i, name in ipairs(RUN_FIELDS) do run[name] = scope.row[i] end
    table.insert(runs, run)
  end
  local strictest = {}
  for k, name in ipairs({'daily', 'hourly', 'daily_tokens', 'hourly_tokens'}) do
    if declared[k][1] then strictest[name] = {cap = int(declared[k][1]), policy = declared[k][2]} end
  end
  return {'refused', cjson.encode({
    verdict = verdict, now = fmt(now), minute = int(minute), day_key = day_key,
    day_micros = int(day_used), hour_micros = int(hour_used), day_tokens = int(day_tokens),
    hour_tokens = int(hour_tokens), action_failures = int(attempts),
    breaker = {state = b[1], failures = b[2], opened = b[3], probe = b[4], probe_exp = b[5]},
    rate = {adm = r[1], cool = r[2]}, halts = halts, chain = runs, declared = strictest,
  })}
end
local run = chain[1]
local function halt_run(reason, figures)
  redis.call('HSET', me .. ':halts', run_id, halt_json(reason, 'budget', now, figures))
end

-- decide, in the order of decide_gate
if #halts > 0 then return refuse('halted') end
local bstate = b[1] or 'closed'
local bwrite, transition = nil, ''
if bstate == 'open' then
  local opened = tonumber(b[3] or '') or now
  if now < opened + breaker.cooldown_s then return refuse('circuit_open') end
  bwrite = {'state', 'half_open', 'probe', rid, 'probe_exp', fmt(now + breaker.probe_lease_s)}
  transition = 'half_open'
elseif bstate == 'half_open' then
  local probe_exp = tonumber(b[5] or '')
  if b[4] and probe_exp and probe_exp > now then return refuse('circuit_open') end
  bwrite = {'state', 'half_open', 'probe', rid, 'probe_exp', fmt(now + breaker.probe_lease_s)}
end
local admitted, rate_cool, tripped = nil, nil, false
if rate then
  local cool = tonumber(r[2] or '')
  if cool and now < cool then return refuse('rate_limited') end
  local since = now - rate.window_s
  local recent = {}
  for t in string.gmatch(r[1] or '', '[^,]+') do
    local value = tonumber(t)
    if value > since then table.insert(recent, value) end
  end
  if #recent >= rate.max then return refuse('rate_limited') end
  table.insert(recent, now)
  admitted = {}
  for i = math.max(1, #recent - rate.max + 1), #recent do table.insert(admitted, fmt(recent[i])) end
  if #admitted >= rate.max then
    tripped = true
    if rate.cooldown_s > 0 then rate_cool = fmt(now + rate.cooldown_s) end
  end
end
-- the caps, in decide_gate's order: the chain's money, the chain's tokens, then the windows'
-- (money, then tokens); token caps only when one can bind (on the chain, requested or declared)
local tokens_capped = daily_tcap or hourly_tcap
for _, scope in ipairs(chain) do
  if scope.tcap then tokens_capped = true end
end
local needed = math.max(estimate, 1)  -- a call with no estimate still needs room: a spent cap refuses
local tneeded = math.max(etokens, 1)
local fraction = 0.0
local function use(used, amount, cap)
  local share = 1.0
  if cap ~= 0 then share = (used + amount) / cap end
  if share > fraction then fraction = share end
end
local kinds = {{'cap', 'spent', 'reserved', estimate, needed, '_budget'}}
if tokens_capped then table.insert(kinds, {'tcap', 'tspent', 'treserved', etokens, tneeded, '_token_budget'}) end
for k, kind in ipairs(kinds) do
  local cap_field, spent_field, reserved_field, amount, room, suffix = unpack(kind)
  for depth, scope in ipairs(chain) do
    local cap = scope[cap_field]
    if cap then
      local used = scope[spent_field] + scope[reserved_field]
      if used + room > cap then
        local which = 'ancestor' .. suffix
        if depth == 1 then which = 'run' .. suffix end
        local figures = {capped_run = scope.id, used_usd = usd(used), estimate_usd = usd(amount), cap_usd = usd(cap)}
        if k == 2 then
          figures = {capped_run = scope.id, used_tokens = used, estimate_tokens = amount, cap_tokens = cap}
        end
        halt_run(which, figures)
        return refuse('budget')
      end
      use(used, amount, cap)
    end
  end
end
local windows = {{day_used, daily_cap, estimate, needed}, {hour_used, hourly_cap, estimate, needed}}
if tokens_capped then
  table.insert(windows, {day_tokens, daily_tcap, etokens, tneeded})
  table.insert(windows, {hour_tokens, hourly_tcap, etokens, tneeded})
end
for _, w in ipairs(windows) do
  if w[2] then
    if w[1] + w[4] > w[2] then return refuse('budget') end
    use(w[1], w[3], w[2])
  end
end
if req.max_steps and run.steps >= req.max_steps then
  halt_run('max_steps', {steps = run.steps, max_steps = req.max_steps})
  return refuse('max_steps')
end
if req.max_retries_total and run.failures > req.max_retries_total then
  halt_run('max_retries_total', {failures = run.failures, max_retries_total = req.max_retries_total})
  return refuse('max_retries_total')
end
local remaining = false
if req.timeout_s then
  local elapsed = now - run.started
  remaining = req.timeout_s - elapsed
  if remaining <= 0 then
    halt_run('timeout', {elapsed_s = real(elapsed), timeout_s = real(req.timeout_s)})
    return refuse('timeout')
  end
end
if req.max_attempts and attempts >= req.max_attempts then return refuse('max_attempts') end

-- reserve
local estimates = int(estimate) .. ':' .. int(etokens)
local entry = 'u|' .. estimates .. '|' .. day_key .. '|' .. int(minute) .. '|' .. fmt(now)
  .. '|' .. int(store.pid) .. '|' .. store.host .. '|' .. action
if redis.call('HSETNX', me .. ':ledger:' .. run_id, rid, entry) == 0 then return {'duplicate'} end
if bwrite then redis.call('HSET', bk, unpack(bwrite)) end
if admitted then
  redis.call('HSET', rk, 'adm', table.concat(admitted, ','))
  if rate_cool then redis.call('HSET', rk, 'cool', rate_cool) else redis.call('HDEL', rk, 'cool') end
  redis.call('EXPIRE', rk, math.floor(rate.window_s + rate.cooldown_s) + 60)
end
for i, scope in ipairs(chain) do
  local key = base(scope.agent) .. ':run:' .. scope.id
  redis.call('HINCRBY', key, 'reserved', estimate)
  if etokens ~= 0 then redis.call('HINCRBY', key, 'treserved', etokens) end
  if i == 1 then redis.call('HINCRBY', key, 'steps', 1) end
end
redis.call('INCR', me .. ':open')
redis.call('HSET', me .. ':clock', 'at', fmt(now), 'day', day_key)
if redis.call('HINCRBY', dk, 'reserved', estimate) == estimate then  -- a new day (or all settled)
  redis.call('EXPIRE', dk, DAY_TTL_S)
end
slide_hour(mk, hour_slide)
slide_hour(tmk, thour_slide)
redis.call('HINCRBY', mk, int(minute), estimate)
redis.call('HINCRBY', mk, 'total', estimate)
if etokens ~= 0 then
  redis.call('HINCRBY', dk, 'treserved', etokens)
  redis.call('HINCRBY', tmk, int(minute), etokens)
  redis.call('HINCRBY', tmk, 'total', etokens)
end
if redis.call('TTL', mk) < 3600 then  -- refreshed once a minute, not on every call
  redis.call('EXPIRE', mk, 3720)
  redis.call('EXPIRE', tmk, 3720)
  redis.call('EXPIRE', dk, DAY_TTL_S)
end
local function flag(yes) if yes then return '1' end return '0' end
return table.concat(GateAdmitted({
  probe = flag(bwrite), breaker_transition = transition, rate_limit_tripped = flag(tripped),
  remaining_s = remaining and fmt(remaining) or '', usage_fraction = fmt(fraction),
  breaker_clean = flag(bstate == 'closed' and tonumber(b[2] or '0') == 0),
  tokens_capped = flag(tokens_capped),
}), '|')
