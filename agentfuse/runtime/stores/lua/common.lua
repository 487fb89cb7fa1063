-- What every script shares. A local declared with its record (`--: Store`) reads the record's
-- fields by name; redis_scripts.py turns them into array indices when it loads the script.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local wire = cjson.decode(ARGV[1])  -- [the store's record, the operation's record]
local store = wire[1]  --: Store
local prefix = store.prefix
local function base(agent) return prefix .. ':{' .. agent .. '}' end
local function fmt(x) return string.format('%.17g', x) end
local function int(x) return string.format('%d', x) end
local function clock_now(given)
  if store.client_clock then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function usd(m)
  local whole = math.floor(m / 1000000)
  local frac = m - whole * 1000000
  if frac % 10000 == 0 then return string.format('%d.%02d', whole, frac / 10000) end
  local digits = string.gsub(string.format('%06d', frac), '0+$', '')
  return string.format('%d', whole) .. '.' .. digits
end
-- a halt as stored, as redis_records.halt_text writes it. Figures are strings, integers, or
-- real(x): written exactly, with a decimal point as Python writes a float (cjson keeps 14 digits)
local function real(x) return {real = x} end
local function figure_json(value)
  if type(value) == 'table' then
    local text = fmt(value.real)
    if not string.find(text, '[.eEn]') then text = text .. '.0' end
    return text
  elseif type(value) == 'number' then return int(value) end
  return cjson.encode(value)
end
local function halt_json(reason, source, now, figures)
  local parts = {}
  for name, value in pairs(figures) do table.insert(parts, cjson.encode(name) .. ': ' .. figure_json(value)) end
  table.sort(parts)
  return '{"reason": ' .. cjson.encode(reason) .. ', "source": ' .. cjson.encode(source) .. ', "created_at": "'
    .. fmt(now) .. '", "figures": {' .. table.concat(parts, ', ') .. '}}'
end
-- The hourly window: minute buckets plus their running 'total' from minute 'floor' on. The window
-- ending at `minute` is that total less the buckets before minute - 59. Only a reservation moves
-- the floor (and drops those buckets, one per minute, amortised): the books' clock never goes back
-- before a reservation, so no later gate asks for a window that starts before the floor.
local function hour_window(mk, minute)
  local state = redis.call('HMGET', mk, 'total', 'floor')
  local total, floor, low = tonumber(state[1]) or 0, tonumber(state[2]), minute - 59
  if floor ~= nil and floor >= low then return total, nil end  -- the window has not moved
  local dropped = {}
  if floor ~= nil then
    local fields = {}
    if low - floor <= 60 then
      for m = floor, low - 1 do table.insert(fields, int(m)) end
    else
      for _, field in ipairs(redis.call('HKEYS', mk)) do
        local m = tonumber(field)
        if m and m < low then table.insert(fields, field) end
      end
    end
    local values = #fields > 0 and redis.call('HMGET', mk, unpack(fields)) or {}
    for i, value in ipairs(values) do
      if value then
        total = total - tonumber(value)
        table.insert(dropped, fields[i])
      end
    end
  end
  return total, {low = low, dropped = dropped, total = total}
end
-- move the window's floor as hour_window found it (before adding this reservation to it)
local function slide_hour(mk, slide)
  if not slide then return end
  if #slide.dropped > 0 then redis.call('HDEL', mk, unpack(slide.dropped)) end
  redis.call('HSET', mk, 'total', slide.total, 'floor', slide.low)
end
-- a run's hash fields, in the order of RUN_FIELDS in redis_records.py
local RUN_FIELDS = {'parent', 'pagent', 'cap', 'started', 'spent', 'reserved', 'steps', 'failures',
  'tcap', 'tspent', 'treserved'}
-- a ledger entry's estimate: 'micros:tokens' (or 'micros', written before token caps)
local function estimate_of(field)
  local micros, tokens = string.match(field, '^([^:]+):(.*)$')
  if micros then return tonumber(micros), tonumber(tokens) end
  return tonumber(field), 0
end
-- add a count to a minute bucket of an hourly window (if still in it), and to its total
local function add_minute(mk, minute, amount)
  local floor = tonumber(redis.call('HGET', mk, 'floor'))
  if floor and tonumber(minute) >= floor then
    redis.call('HINCRBY', mk, minute, amount)
    redis.call('HINCRBY', mk, 'total', amount)
  end
end
-- byte order whatever the server's locale (Lua compares strings with strcoll), as SQLite's BINARY
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- the agent's clock: time and day of its latest reservation; the books never go back before it
local function latest_of(me)
  local c = redis.call('HMGET', me .. ':clock', 'at', 'day')
  return tonumber(c[1]) or 0, c[2] or ''
end
