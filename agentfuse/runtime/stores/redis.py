"""The shared store: one Redis (standalone or Sentinel-fronted) for many processes and hosts.

Every deciding operation (``open_run``, ``gate``, ``settle``) is ONE Lua script, loaded once and
run by SHA (reloaded on ``NOSCRIPT``), so no two workers can pass a check with the same last cent.
The gate script mirrors :func:`agentfuse.runtime.decisions.decide_gate` and the breaker rules.
An allowed call gets a one-line answer; a refusal returns the state it was decided on, and the
Python side replays the pure decision on that state to build the refusal's message and figures
and to check that script and rules agree (the contract suite compares both stores call by call).

Cost per guarded call: one round trip (a deferred settlement rides along with the next gate),
on a connection held by the thread (a pool checkout costs more than the call), with every
argument in one JSON bulk. Other reads and writes go through redis-py's pool.

Time: by default the scripts read Redis ``TIME``, so rolling windows, cooldowns, probe leases and
deadlines do not depend on any worker's clock (clock skew between hosts cannot widen a window).
``?clock=client`` in the URL uses the ``now`` the guard passes instead (tests with an injected
clock). The calendar day of the daily cap is the guard's (policy time zone).

Keys: ``{prefix}:{{agent}}:...``; the braces are a hash tag, so one agent's keys share a slot.
Money is integer micro-dollars (``HINCRBY``), tokens integer counts beside it (run fields ``tcap``,
``tspent``, ``treserved``; day fields ``tspent``, ``treserved``; minute buckets in ``tminutes``;
a ledger entry's estimate ``micros:tokens``, an entry written before token caps has no
``:tokens``, i.e. none); the minute buckets of the hourly window expire after
an hour, rate-limit windows after their window and cooldown, day buckets after nine days (``status``
shows a week). Run rows and their ledgers are kept, like the SQLite store's.

A store that cannot be reached raises :class:`~agentfuse.runtime.errors.StoreUnavailable`, never a
redis-py exception; messages show the URL with its password replaced by ``***``. The ``durability``
argument is accepted for symmetry: durability is the server's (``appendonly yes``,
``appendfsync always`` for power-loss safety).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from agentfuse.runtime import breaker as breaker_rules
from agentfuse.runtime.decisions import GateSnapshot, TokenWindows, decide_gate
from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.redaction import redact as redact_url
from agentfuse.runtime.stores.books import SEEN_FILE_NAME, identity_changed
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    AgentTotals,
    BooksLoss,
    CapDeclaration,
    StoreIdentity,
    BreakerRecord,
    BreakerState,
    GateRequest,
    GateResult,
    DaySpend,
    HaltRecord,
    Heartbeat,
    Outcome,
    RateLimitRecord,
    Reconciliation,
    Reservation,
    RestartSpec,
    RunInfo,
    RunSummary,
    Settlement,
    SettleResult,
    StartCheck,
)

DEFAULT_PREFIX = "agentfuse"
CLOCKS = ("redis", "client")
HOUR_MINUTES = 60
CONNECT_RETRIES = 3
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0
DAY_TTL_S = 9 * 86400
"""Day buckets outlive ``status``'s week by a day."""

T = TypeVar("T")

_LUA_COMMON = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local argv = cjson.decode(ARGV[1])  -- every argument in one JSON array: one cheap bulk to send
local prefix = argv[1]
local function base(agent) return prefix .. ':{' .. agent .. '}' end
local function fmt(x) return string.format('%.17g', x) end
local function optnum(v) if v then return tonumber(v) end return nil end
local function clock_now(given)
  if given ~= '' then return tonumber(given) end
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
local function halt_json(reason, source, now, figures)
  return cjson.encode({reason = reason, source = source, created_at = fmt(now), figures = figures})
end
-- The hourly window: minute buckets plus their running 'total' from minute 'floor' on. Moving
-- the window to end at `minute` drops the buckets that left it (one per minute, amortised).
local function slide_hour(mk, minute)
  local state = redis.call('HMGET', mk, 'total', 'floor')
  local total, floor, low = tonumber(state[1]) or 0, tonumber(state[2]), minute - 59
  if floor == nil or floor < low then
    if floor ~= nil and low - floor <= 60 then
      for m = floor, low - 1 do
        local field = string.format('%d', m)
        total = total - (tonumber(redis.call('HGET', mk, field)) or 0)
        redis.call('HDEL', mk, field)
      end
    elseif floor ~= nil then
      for _, field in ipairs(redis.call('HKEYS', mk)) do
        local m = tonumber(field)
        if m and m < low then
          total = total - tonumber(redis.call('HGET', mk, field))
          redis.call('HDEL', mk, field)
        end
      end
    end
    redis.call('HSET', mk, 'total', total, 'floor', low)
  end
  return total
end
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
"""

_LUA_SETTLE_ONE = r"""
-- One settlement, as Store.settle: 13 fields from argv[at]: agent, run_id, reservation_id, action,
-- cost, now, outcome, breaker_counts, breaker key, failure_threshold, halt run_id, halt json,
-- tokens ('' for the reserved estimate). Returns nil for an unknown or settled reservation, else
-- now, action and run failures, the breaker before (5 fields) and its state after.
local function settle_one(at)
  local agent, run_id, rid, action = argv[at], argv[at + 1], argv[at + 2], argv[at + 3]
  local cost, outcome, reported = tonumber(argv[at + 4]), argv[at + 6], argv[at + 7] == '1'
  local me = base(agent)
  local lk = me .. ':ledger:' .. run_id
  local entry = redis.call('HGET', lk, rid)
  if not entry or string.sub(entry, 1, 2) ~= 'u|' then return nil end
  local now = clock_now(argv[at + 5])
  local latest = latest_of(me)
  if latest > now then now = latest end
  local parts = {}
  for p in string.gmatch(entry, '[^|]+') do table.insert(parts, p) end
  local estimate, etokens = estimate_of(parts[2])
  local day_key, minute = parts[3], parts[4]
  local tokens = etokens
  if argv[at + 12] ~= '' then tokens = tonumber(argv[at + 12]) end
  local failed = outcome == 'failure'
  redis.call('HSET', lk, rid, 's|' .. parts[2] .. '|' .. argv[at + 4] .. ':' .. string.format('%d', tokens)
    .. '|' .. outcome)
  local cur_id, cur_agent, depth = run_id, agent, 0
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
    action_failures = redis.call('HINCRBY', me .. ':attempts:' .. run_id, action, 1)
    run_failures = tonumber(redis.call('HGET', me .. ':run:' .. run_id, 'failures'))
  end
  -- the breaker, as breaker.after_call
  local bk = me .. ':breaker:' .. argv[at + 8]
  local b = redis.call('HMGET', bk, 'state', 'failures', 'opened', 'probe', 'probe_exp')
  local state, bfail = b[1] or 'closed', tonumber(b[2] or '0')
  local after = state
  local function open_breaker(failures)
    redis.call('DEL', bk)
    redis.call('HSET', bk, 'state', 'open', 'failures', failures, 'opened', fmt(now))
    after = 'open'
  end
  if state == 'half_open' and b[4] == rid then
    if outcome == 'success' then
      redis.call('DEL', bk)
      after = 'closed'
    elseif failed and reported then open_breaker(bfail)
    else redis.call('HDEL', bk, 'probe', 'probe_exp') end
  elseif state == 'closed' and reported then
    if outcome == 'success' then
      if bfail ~= 0 then redis.call('DEL', bk) end
    elseif failed then
      bfail = bfail + 1
      if bfail >= tonumber(argv[at + 9]) then open_breaker(bfail)
      else redis.call('HSET', bk, 'state', 'closed', 'failures', bfail) end
    end
  end
  if argv[at + 11] ~= '' then redis.call('HSET', me .. ':halts', argv[at + 10], argv[at + 11]) end
  return {fmt(now), action_failures, run_failures, b[1], b[2], b[3], b[4], b[5], after}
end
"""

_OPEN_RUN = (
    _LUA_COMMON
    + r"""
-- ARGV: prefix, agent, run_id, parent_id, cap, now, token cap
local agent, run_id, parent_id, cap = argv[2], argv[3], argv[4], argv[5]
local index = prefix .. ':runs'
local owner = redis.call('HGET', index, run_id)
if not owner then
  local started = clock_now(argv[6])
  local latest = latest_of(base(agent))
  if latest > started then started = latest end
  local fields = {'started', fmt(started), 'spent', 0, 'reserved', 0, 'steps', 0, 'failures', 0}
  if parent_id ~= '' then
    local parent_agent = redis.call('HGET', index, parent_id)
    if not parent_agent then return {'noparent'} end
    table.insert(fields, 'parent'); table.insert(fields, parent_id)
    table.insert(fields, 'pagent'); table.insert(fields, parent_agent)
  end
  if cap ~= '' then table.insert(fields, 'cap'); table.insert(fields, cap) end
  if argv[7] ~= '' then table.insert(fields, 'tcap'); table.insert(fields, argv[7]) end
  redis.call('HSET', base(agent) .. ':run:' .. run_id, unpack(fields))
  redis.call('HSET', index, run_id, agent)
  redis.call('SADD', prefix .. ':agents', agent)
  owner = agent
end
local row = redis.call('HMGET', base(owner) .. ':run:' .. run_id, unpack(RUN_FIELDS))
return {'ok', owner, unpack(row)}
"""
)

_GATE = (
    _LUA_COMMON
    + _LUA_SETTLE_ONE
    + r"""
-- ARGV: prefix, agent, run_id, reservation_id, action, estimate, now, day_key, minute,
--       breaker key, failure_threshold, cooldown_s, probe_lease_s,
--       rate action, rate max, rate window_s, rate cooldown_s, rate ttl_s,
--       daily cap, hourly cap, max_steps, max_retries_total, timeout_s, max_attempts, day ttl,
--       count of deferred settlements, then 13 fields for each (see settle_one),
--       then the pid and host of the process making the reservation, the books' pinned identity,
--       estimate tokens, daily token cap, hourly token cap
local process_at = 27 + 13 * tonumber(argv[26])
local agent, run_id, rid, action = argv[2], argv[3], argv[4], argv[5]
local me = base(agent)
local pinned = argv[process_at + 2]
if pinned ~= '' then  -- the books this process checked at start must still be there
  local found = redis.call('HGET', me .. ':identity', 'id')
  if found ~= pinned then return {'identity', found or ''} end
end
for n = 1, tonumber(argv[26]) do settle_one(27 + 13 * (n - 1)) end
local estimate = tonumber(argv[6])
local etokens = tonumber(argv[process_at + 3])
local daily_tcap = optnum(argv[process_at + 4] ~= '' and argv[process_at + 4])
local hourly_tcap = optnum(argv[process_at + 5] ~= '' and argv[process_at + 5])
local now = clock_now(argv[7])
local day_key = argv[8]
local minute = tonumber(argv[9])
if argv[7] == '' then minute = math.floor(now / 60) end
local latest_at, latest_day = latest_of(me)
if now < latest_at then  -- the clock went back: as decisions.effective_time
  now = latest_at
  minute = math.max(minute, math.floor(latest_at / 60))
  if before(day_key, latest_day) then day_key = latest_day end
end
local bkey, threshold, cooldown, lease = argv[10], tonumber(argv[11]), tonumber(argv[12]), tonumber(argv[13])
local rate_action = argv[14]
local daily_cap, hourly_cap = optnum(argv[19] ~= '' and argv[19]), optnum(argv[20] ~= '' and argv[20])
local max_steps, max_retries = optnum(argv[21] ~= '' and argv[21]), optnum(argv[22] ~= '' and argv[22])
local timeout_s, max_attempts = optnum(argv[23] ~= '' and argv[23]), optnum(argv[24] ~= '' and argv[24])
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
  table.insert(chain, {id = cur_id, agent = cur_agent, cap = optnum(row[3]), started = tonumber(row[4]),
    spent = tonumber(row[5]), reserved = tonumber(row[6]), steps = tonumber(row[7]),
    failures = tonumber(row[8]), tcap = optnum(row[9]), tspent = tonumber(row[10]) or 0,
    treserved = tonumber(row[11]) or 0, row = row})
  if #chain > 1000 then return redis.error_reply('run chain of ' .. run_id .. ' is cyclic') end
  cur_id, cur_agent = row[1], row[2]
end
local halts = {}
local h = redis.call('HGET', me .. ':halts', '')
if h then table.insert(halts, {agent, '', h}) end
for _, run in ipairs(chain) do
  h = redis.call('HGET', base(run.agent) .. ':halts', run.id)
  if h then table.insert(halts, {run.agent, run.id, h}) end
end
local bk = me .. ':breaker:' .. bkey
local b = redis.call('HMGET', bk, 'state', 'failures', 'opened', 'probe', 'probe_exp')
local rk = me .. ':rate:' .. rate_action
local r = {false, false}
if rate_action ~= '' then r = redis.call('HMGET', rk, 'adm', 'cool') end
local dk = me .. ':day:' .. day_key
local d = redis.call('HMGET', dk, 'spent', 'reserved', 'tspent', 'treserved')
local day_used = (tonumber(d[1]) or 0) + (tonumber(d[2]) or 0)
local day_tokens = (tonumber(d[3]) or 0) + (tonumber(d[4]) or 0)
local mk = me .. ':minutes'
local hour_used = slide_hour(mk, minute)
local tmk = me .. ':tminutes'
local hour_tokens = slide_hour(tmk, minute)
local attempts = tonumber(redis.call('HGET', me .. ':attempts:' .. run_id, action) or '0')

-- a refusal returns the state it was decided on, for the Python rules to explain it
local function refuse(kind)
  local snapshot = {fmt(now), string.format('%d', minute), kind, string.format('%d', day_used),
    string.format('%d', hour_used), string.format('%d', attempts), b[1], b[2], b[3], b[4], b[5], r[1], r[2],
    #halts}
  for _, v in ipairs(halts) do
    table.insert(snapshot, v[1]); table.insert(snapshot, v[2]); table.insert(snapshot, v[3])
  end
  table.insert(snapshot, #chain)
  for _, scope in ipairs(chain) do
    local row = scope.row
    for _, v in ipairs({scope.id, scope.agent, row[1], row[3], row[4], row[5], row[6], row[7], row[8],
                        row[9], row[10], row[11]}) do
      table.insert(snapshot, v)
    end
  end
  table.insert(snapshot, day_key)
  for k = 1, 4 do
    table.insert(snapshot, declared[k][1] and string.format('%d', declared[k][1]) or '')
    table.insert(snapshot, declared[k][2])
  end
  table.insert(snapshot, string.format('%d', day_tokens))
  table.insert(snapshot, string.format('%d', hour_tokens))
  return snapshot
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
  local opened = optnum(b[3]) or now
  if now < opened + cooldown then return refuse('circuit_open') end
  bwrite = {'state', 'half_open', 'probe', rid, 'probe_exp', fmt(now + lease)}
  transition = 'half_open'
elseif bstate == 'half_open' then
  local probe_exp = optnum(b[5])
  if b[4] and probe_exp and probe_exp > now then return refuse('circuit_open') end
  bwrite = {'state', 'half_open', 'probe', rid, 'probe_exp', fmt(now + lease)}
end
local admitted, rate_cool, tripped = nil, nil, 0
if rate_action ~= '' then
  local rmax, window, rcool = tonumber(argv[15]), tonumber(argv[16]), tonumber(argv[17])
  local cool = optnum(r[2])
  if cool and now < cool then return refuse('rate_limited') end
  local since = now - window
  local recent = {}
  for t in string.gmatch(r[1] or '', '[^,]+') do
    local value = tonumber(t)
    if value > since then table.insert(recent, value) end
  end
  if #recent >= rmax then return refuse('rate_limited') end
  table.insert(recent, now)
  admitted = {}
  for i = math.max(1, #recent - rmax + 1), #recent do table.insert(admitted, fmt(recent[i])) end
  if #admitted >= rmax then
    tripped = 1
    if rcool > 0 then rate_cool = fmt(now + rcool) end
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
if max_steps and run.steps >= max_steps then
  halt_run('max_steps', {steps = run.steps, max_steps = max_steps})
  return refuse('max_steps')
end
if max_retries and run.failures > max_retries then
  halt_run('max_retries_total', {failures = run.failures, max_retries_total = max_retries})
  return refuse('max_retries_total')
end
local remaining = false
if timeout_s then
  local elapsed = now - run.started
  remaining = timeout_s - elapsed
  if remaining <= 0 then
    halt_run('timeout', {elapsed_s = elapsed, timeout_s = timeout_s})
    return refuse('timeout')
  end
end
if max_attempts and attempts >= max_attempts then return refuse('max_attempts') end

-- reserve
local entry = 'u|' .. argv[6] .. ':' .. argv[process_at + 3] .. '|' .. day_key .. '|' .. string.format('%d', minute)
  .. '|' .. fmt(now)
  .. '|' .. argv[process_at] .. '|' .. argv[process_at + 1] .. '|' .. action
if redis.call('HSETNX', me .. ':ledger:' .. run_id, rid, entry) == 0 then return {'duplicate'} end
if bwrite then redis.call('HSET', bk, unpack(bwrite)) end
if admitted then
  redis.call('HSET', rk, 'adm', table.concat(admitted, ','))
  if rate_cool then redis.call('HSET', rk, 'cool', rate_cool) else redis.call('HDEL', rk, 'cool') end
  redis.call('EXPIRE', rk, tonumber(argv[18]))
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
  redis.call('EXPIRE', dk, tonumber(argv[25]))
end
redis.call('HINCRBY', mk, string.format('%d', minute), estimate)
redis.call('HINCRBY', mk, 'total', estimate)
if etokens ~= 0 then
  redis.call('HINCRBY', dk, 'treserved', etokens)
  redis.call('HINCRBY', tmk, string.format('%d', minute), etokens)
  redis.call('HINCRBY', tmk, 'total', etokens)
end
if redis.call('TTL', mk) < 3600 then  -- refreshed once a minute, not on every call
  redis.call('EXPIRE', mk, 3720)
  redis.call('EXPIRE', tmk, 3720)
  redis.call('EXPIRE', dk, tonumber(argv[25]))
end
local clean = 0
if bstate == 'closed' and tonumber(b[2] or '0') == 0 then clean = 1 end
local probe = 0
if bwrite then probe = 1 end
local left = ''
if remaining then left = fmt(remaining) end
local tcapped = 0
if tokens_capped then tcapped = 1 end
-- one bulk string, the cheapest reply to read: ok|probe|transition|tripped|remaining|fraction|clean|tokens capped
return table.concat({'ok', probe, transition, tripped, left, fmt(fraction), clean, tcapped}, '|')
"""
)

_SETTLE = (
    _LUA_COMMON
    + _LUA_SETTLE_ONE
    + r"""
-- ARGV: prefix, then one settlement's 13 fields
local result = settle_one(2)
if not result then return {'unknown'} end
return {'ok', unpack(result)}
"""
)


_RECORD_START = r"""
-- ARGV (plain): prefix, agent, host|pid, now, window_s, max_starts, cooldown_s.
-- One process start (once per host|pid in the window) and the restart guard, mirroring
-- agentfuse.runtime.stores.base.check_start.
local me = ARGV[1] .. ':{' .. ARGV[2] .. '}'
local now, window, max_starts, cooldown = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local starts = me .. ':starts'
redis.call('ZREMRANGEBYSCORE', starts, '-inf', string.format('%.17g', now - window))
redis.call('ZADD', starts, 'NX', string.format('%.17g', now), ARGV[3])
redis.call('EXPIRE', starts, math.ceil(window) + 60)
redis.call('SADD', ARGV[1] .. ':agents', ARGV[2])
local count = redis.call('ZCARD', starts)
local until_at = tonumber(redis.call('GET', me .. ':restart_cooldown') or '')
if until_at and now < until_at then return {count, string.format('%.17g', until_at), 0} end
if count > max_starts then
  until_at = now + cooldown
  redis.call('SET', me .. ':restart_cooldown', string.format('%.17g', until_at))
  return {count, string.format('%.17g', until_at), 1}
end
return {count, '', 0}
"""

_CLAIM = r"""
-- ARGV (plain): prefix, agent, message_id, now, ttl_s, value. Take the claim unless an unexpired one
-- exists (expiry by the guard's clock; Redis drops the key a minute after, by its own).
local key = ARGV[1] .. ':{' .. ARGV[2] .. '}:claim:' .. ARGV[3]
local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local held = redis.call('GET', key)
if held then
  local expires = tonumber(string.match(held, '^[^|]+'))
  if expires and expires > now then return 0 end
end
redis.call('SET', key, string.format('%.17g', now + ttl) .. '|' .. ARGV[6], 'EX', math.ceil(ttl) + 60)
return 1
"""


_CREATE_IDENTITY = r"""
-- ARGV (plain): prefix, agent, new identity, now. The agent's books' identity unless one exists.
local key = ARGV[1] .. ':{' .. ARGV[2] .. '}:identity'
if redis.call('EXISTS', key) == 0 then redis.call('HSET', key, 'id', ARGV[3], 'created_at', ARGV[4]) end
return redis.call('HMGET', key, 'id', 'created_at', 'reset_reason')
"""


class RedisStoreError(RuntimeError):
    """The Lua scripts and the Python decision rules disagree: a bug, never a normal refusal."""


def parse_url(url: str) -> tuple[str, str, str]:
    """Split our own options off a Redis URL: returns (redis-py URL, key prefix, clock)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ValueError(f"not a Redis URL: {redact_url(url)!r}; use redis://host:port/db or rediss://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: value for key, value in query if key in ("prefix", "clock")}
    rest = [(key, value) for key, value in query if key not in ("prefix", "clock")]
    prefix = unquote(options.get("prefix", DEFAULT_PREFIX))
    clock = options.get("clock", "redis")
    if clock not in CLOCKS:
        raise ValueError(f"Redis URL option clock={clock!r} must be one of {', '.join(CLOCKS)}")
    if not prefix or any(ch in prefix for ch in "{}*?[]"):
        raise ValueError(f"Redis URL option prefix={prefix!r} must be non-empty without {{}}*?[]")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, clock


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _breaker_from(fields: Sequence[Any]) -> BreakerRecord:
    state, failures, opened, probe, probe_exp = fields
    if state is None:
        return BreakerRecord()
    return BreakerRecord(
        BreakerState(state), int(failures or 0), _float(opened), probe or None, _float(probe_exp)
    )


def _rate_from(admissions: str | None, cooldown: str | None) -> RateLimitRecord:
    times = tuple(float(t) for t in admissions.split(",")) if admissions else ()
    return RateLimitRecord(times, _float(cooldown))


def _halt_from(agent: str, run_id: str, text: str) -> HaltRecord:
    data = json.loads(text)
    figures = data.get("figures") or {}
    return HaltRecord(
        agent, run_id, data["reason"], data["source"], float(data["created_at"]),
        figures if isinstance(figures, dict) else {},
    )


def _run_from(run_id: str, agent: str, fields: Sequence[Any]) -> RunInfo:
    """A run row from its hash fields (``_RUN_FIELD_NAMES``; the token fields may be missing)."""
    parent, _parent_agent, cap, started, spent, reserved, steps, failures, *tokens = fields
    token_cap, spent_tokens, reserved_tokens = (*tokens, None, None, None)[:3]
    return RunInfo(
        run_id, agent, parent or None, int(cap) if cap is not None else None, float(started),
        int(spent), int(reserved), int(steps), int(failures),
        int(token_cap) if token_cap else None, int(spent_tokens or 0), int(reserved_tokens or 0),
    )


def _opt(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisStore:
    """:class:`~agentfuse.runtime.stores.base.Store` on one Redis server, shared by every host."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        clock: str | None = None,
        retries: int = CONNECT_RETRIES,
    ) -> None:
        redis_url, url_prefix, url_clock = parse_url(url)
        self.url = redact_url(url)
        self.prefix = prefix or url_prefix
        self.clock = clock or url_clock
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        self._retries = retries
        self._backoff = ExponentialBackoff(cap=0.5, base=0.05)
        options: dict[str, Any] = {
            "decode_responses": True,
            "retry": Retry(self._backoff, retries),
        }
        query = dict(parse_qsl(urlsplit(redis_url).query))
        if "protocol" not in query:
            options["protocol"] = 2  # the lighter parser: a guarded call makes one round trip
        if "socket_timeout" not in query:
            options["socket_timeout"] = DEFAULT_SOCKET_TIMEOUT_S
        if "socket_connect_timeout" not in query:
            options["socket_connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
        self._client: Any  # redis-py types replies as bytes | str; decode_responses=True makes them str
        try:
            self._client = redis.Redis.from_url(redis_url, **options)
        except (ValueError, redis.RedisError) as exc:
            raise ValueError(f"bad Redis URL {self.url!r}: {exc}") from None
        self.host = socket.gethostname().replace("|", "_")
        """Recorded with each reservation of this process (``|`` separates ledger fields)."""
        self._open_run = self._client.register_script(_OPEN_RUN)
        self._record_start = self._client.register_script(_RECORD_START)
        self._claim = self._client.register_script(_CLAIM)
        self._create_identity = self._client.register_script(_CREATE_IDENTITY)
        self._pins: dict[str, str] = {}
        """agent -> the books' identity this handle checked (:meth:`pin_identity`)."""
        self._durability: list[str] | None = None
        """What the server's configuration risks, once asked (:meth:`durability_warnings`)."""
        address = urlsplit(redis_url)
        self._books_key = (
            f"{address.scheme}://{address.hostname or 'localhost'}:{address.port or 6379}"
            f"/{address.path.strip('/') or '0'}?prefix={self.prefix}"
        )
        """This store in a seen record: server, database and prefix, never a password."""
        self._gate = self._client.register_script(_GATE)
        self._settle = self._client.register_script(_SETTLE)
        self._local = threading.local()
        self._connections: list[Any] = []  # redis-py connections (untyped there)
        self._connections_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, durability: str = "normal") -> RedisStore:
        """``durability`` is the server's own (AOF settings); accepted for symmetry."""
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r}, clock={self.clock!r})"

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """Run ``action``; every redis-py error becomes :class:`StoreUnavailable`."""
        try:
            return action()
        except redis.RedisError as exc:
            raise StoreUnavailable(
                f"Redis store {self.url} is unavailable: {type(exc).__name__}: {exc}"
            ) from None

    def _script_connection(self) -> Any:
        """This thread's own connection for the scripts (a pool round costs more than the call).

        A forked child gets a new one; the parent's socket is left to the parent.
        """
        held = getattr(self._local, "connection", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        pool = self._client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        self._local.connection = (os.getpid(), connection)
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _run_script(self, script: Script, agent: str, args: list[str]) -> Any:
        """EVALSHA on this thread's connection; load on NOSCRIPT, bounded retries on connection loss.

        A retried gate whose first attempt did run finds its reservation and says ``duplicate``,
        so a retry never reserves twice.
        """
        blob = json.dumps(args)
        key = self._base(agent)
        failures = 0
        while True:
            connection = self._script_connection()
            try:
                connection.send_command("EVALSHA", script.sha, 1, key, blob)
                return connection.read_response()
            except redis.exceptions.NoScriptError:
                self._call(lambda: self._client.script_load(script.script))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                connection.disconnect()
                failures += 1
                if failures > self._retries:
                    raise StoreUnavailable(
                        f"Redis store {self.url} is unavailable: {type(exc).__name__}: {exc}"
                    ) from None
                time.sleep(self._backoff.compute(failures))
            except redis.RedisError as exc:
                raise StoreUnavailable(
                    f"Redis store {self.url} is unavailable: {type(exc).__name__}: {exc}"
                ) from None

    def _base(self, agent: str) -> str:
        return f"{self.prefix}:{{{agent}}}"

    def key(self, agent: str, *parts: str) -> str:
        """The Redis key of one of an agent's records, e.g. ``key("a", "run", run_id)``."""
        return ":".join((self._base(agent), *parts))

    def _now(self, now: float) -> str:
        return repr(float(now)) if self.clock == "client" else ""

    # -- runs ---------------------------------------------------------------------------------

    def open_run(
        self,
        run_id: str,
        *,
        agent: str,
        parent_id: str | None,
        cap_micros: int | None,
        now: float,
        token_cap: int | None = None,
    ) -> RunInfo:
        args = [self.prefix, agent, run_id, parent_id or "", _opt(cap_micros), self._now(now), _opt(token_cap)]
        reply = self._run_script(self._open_run, agent, args)
        if reply[0] == "noparent":
            raise KeyError(parent_id)
        return _run_from(run_id, reply[1], reply[2:])

    def get_run(self, run_id: str) -> RunInfo | None:
        agent = self._call(lambda: self._client.hget(f"{self.prefix}:runs", run_id))
        if agent is None:
            return None
        fields = self._call(lambda: self._client.hmget(self.key(agent, "run", run_id), list(_RUN_FIELD_NAMES)))
        return _run_from(run_id, agent, fields) if fields[3] is not None else None

    # -- gate and settle ----------------------------------------------------------------------

    def gate(self, request: GateRequest) -> GateResult:
        rate = request.rate_limit
        args = [
            self.prefix, request.agent, request.run_id, request.reservation_id, request.action,
            str(request.estimate_micros), self._now(request.now), request.day_key, str(request.minute),
            request.breaker.key, str(request.breaker.failure_threshold),
            repr(float(request.breaker.cooldown_s)), repr(float(request.breaker.probe_lease_s)),
            rate.action if rate else "", str(rate.max) if rate else "",
            repr(float(rate.window_s)) if rate else "", repr(float(rate.cooldown_s)) if rate else "",
            str(int(rate.window_s + rate.cooldown_s) + 60) if rate else "",
            _opt(request.daily_cap_micros), _opt(request.hourly_cap_micros), _opt(request.max_steps),
            _opt(request.max_retries_total), _opt(request.timeout_s), _opt(request.max_attempts),
            str(DAY_TTL_S),
            str(len(request.settle_first)),
        ]
        for deferred in request.settle_first:
            args += self._settlement_args(deferred)
        args += [
            str(os.getpid()), self.host, self._pins.get(request.agent, ""), str(request.estimate_tokens),
            _opt(request.daily_token_cap), _opt(request.hourly_token_cap),
        ]
        reply = self._run_script(self._gate, request.agent, args)
        if isinstance(reply, str):
            _, probe, transition, tripped, remaining, fraction, clean, tokens_capped = reply.split("|")
            return GateResult(
                probe=probe == "1",
                breaker_transition=BreakerState(transition) if transition else None,
                rate_limit_tripped=tripped == "1",
                remaining_s=float(remaining) if remaining else None,
                usage_fraction=float(fraction),
                breaker_clean=clean == "1",
                tokens_capped=tokens_capped == "1",
            )
        status = reply[0]
        if status == "identity":
            message = identity_changed(self, request.agent, self._pins[request.agent], reply[1] or None)
            raise StoreUnavailable(message, reason="store_lost")
        if status == "norun":
            raise StoreUnavailable(
                f"run {request.run_id} is not in the Redis store {self.url} (its data was lost:"
                " run Redis with appendonly yes); refusing rather than spending untracked"
            )
        if status == "duplicate":
            raise StoreUnavailable(
                f"reservation {request.reservation_id} was already made (a lost reply was retried);"
                " it stays counted until reconciled"
            )
        snapshot, now, minute, day_key, lua_kind = _gate_snapshot(reply)
        if now != request.now or minute != request.minute or day_key != request.day_key:
            request = dataclasses.replace(request, now=now, minute=minute, day_key=day_key)
        decision = decide_gate(snapshot, request)
        python_kind = decision.result.refusal.kind if decision.result.refusal else "ok"
        if python_kind != lua_kind:
            raise RedisStoreError(
                f"gate script decided {lua_kind!r} but the rules decide {python_kind!r}"
                f" for reservation {request.reservation_id}"
            )
        return decision.result

    def _settlement_args(self, settlement: Settlement) -> list[str]:
        """The 13 fields ``settle_one`` in Lua reads for one settlement."""
        halt = settlement.halt
        return [
            settlement.agent, settlement.run_id, settlement.reservation_id, settlement.action,
            str(settlement.cost_micros), self._now(settlement.now), settlement.outcome.value,
            "1" if settlement.breaker_counts else "0", settlement.breaker.key,
            str(settlement.breaker.failure_threshold), halt.run_id if halt else "",
            _halt_json(halt) if halt else "", _opt(settlement.tokens),
        ]

    def settle(self, settlement: Settlement) -> SettleResult:
        args = [self.prefix, *self._settlement_args(settlement)]
        reply = self._run_script(self._settle, settlement.agent, args)
        if reply[0] != "ok":
            return SettleResult(settled=False)
        now = float(reply[1])
        before = _breaker_from(reply[4:9])
        record, transition = breaker_rules.after_call(
            before,
            settlement.breaker,
            now,
            settlement.reservation_id,
            settlement.outcome,
            settlement.breaker_counts,
        )
        if record.state.value != reply[9]:
            raise RedisStoreError(
                f"settle script left the breaker {reply[9]!r} but the rules say {record.state.value!r}"
            )
        return SettleResult(
            settled=True,
            breaker_state=record.state,
            breaker_transition=transition,
            consecutive_failures=record.consecutive_failures,
            action_failures=int(reply[2]),
            run_failures=int(reply[3]),
        )

    # -- halts --------------------------------------------------------------------------------

    def halt(self, record: HaltRecord) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self.key(record.agent, "halts"), record.run_id, _halt_json(record))
            pipe.sadd(f"{self.prefix}:agents", record.agent)
            pipe.execute()

        self._call(write)

    def resume(self, agent: str, run_id: str = AGENT_WIDE) -> int:
        return int(self._call(lambda: self._client.hdel(self.key(agent, "halts"), run_id)))

    def halts(self, agent: str | None = None) -> list[HaltRecord]:
        def read() -> list[HaltRecord]:
            agents = [agent] if agent is not None else sorted(self._client.smembers(f"{self.prefix}:agents"))
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "halts"))
            records = [
                _halt_from(name, run_id, text)
                for name, rows in zip(agents, pipe.execute())
                for run_id, text in rows.items()
            ]
            return sorted(records, key=lambda halt: (halt.created_at, halt.agent, halt.run_id))

        return self._call(read)

    # -- reads --------------------------------------------------------------------------------

    def get_breaker(self, agent: str, key: str = "") -> BreakerRecord:
        fields = self._call(
            lambda: self._client.hmget(
                self.key(agent, "breaker", key), ["state", "failures", "opened", "probe", "probe_exp"]
            )
        )
        return _breaker_from(fields)

    def agent_totals(self, agent: str, *, day_key: str, minute: int) -> AgentTotals:
        def read() -> AgentTotals:
            hour = [str(m) for m in range(minute - HOUR_MINUTES + 1, minute + 1)]
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(self.key(agent, "day", day_key), ["spent", "reserved", "tspent", "treserved"])
            pipe.hmget(self.key(agent, "minutes"), hour)
            pipe.hmget(self.key(agent, "tminutes"), hour)
            day, minutes, token_minutes = pipe.execute()
            return AgentTotals(
                sum(int(v) for v in day[:2] if v is not None),
                sum(int(v) for v in minutes if v is not None),
                sum(int(v) for v in day[2:] if v is not None),
                sum(int(v) for v in token_minutes if v is not None),
            )

        return self._call(read)

    def unsettled(self, run_id: str | None = None) -> int:
        def read() -> int:
            if run_id is not None:
                agent = self._client.hget(f"{self.prefix}:runs", run_id)
                if agent is None:
                    return 0
                entries = self._client.hvals(self.key(agent, "ledger", run_id))
                return sum(1 for entry in entries if entry.startswith("u|"))
            agents = sorted(self._client.smembers(f"{self.prefix}:agents"))
            values = self._client.mget([self.key(name, "open") for name in agents]) if agents else []
            return sum(int(v) for v in values if v is not None)

        return self._call(read)

    def ledger(self, agent: str, run_id: str) -> dict[str, tuple[int, int | None]]:
        """The run's own ledger: reservation id -> (estimate, cost or None while unsettled)."""
        entries = self._call(lambda: self._client.hgetall(self.key(agent, "ledger", run_id)))
        ledger: dict[str, tuple[int, int | None]] = {}
        for reservation_id, entry in entries.items():
            fields = entry.split("|")
            cost = int(fields[2].partition(":")[0]) if fields[0] == "s" else None
            ledger[reservation_id] = (int(fields[1].partition(":")[0]), cost)
        return ledger

    # -- operator tools -----------------------------------------------------------------------

    def _agents(self) -> list[str]:
        return sorted(self._client.smembers(f"{self.prefix}:agents"))

    def _scan(self, agent: str, *parts: str) -> list[str]:
        """Keys of the agent's records under ``parts`` (one SCAN; agent names are escaped)."""
        escaped = "".join("\\" + char if char in "*?[]\\" else char for char in self._base(agent))
        pattern = ":".join((escaped, *parts)) + ":*"
        return sorted(self._client.scan_iter(match=pattern, count=1000))

    def record_heartbeat(self, beat: Heartbeat) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            value = json.dumps({"run_id": beat.run_id, "at": beat.at})
            pipe.hset(self.key(beat.agent, "heartbeats"), f"{beat.host}|{beat.pid}", value)
            pipe.sadd(f"{self.prefix}:agents", beat.agent)
            pipe.execute()

        self._call(write)

    def heartbeats(self, agent: str | None = None) -> list[Heartbeat]:
        def read() -> list[Heartbeat]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "heartbeats"))
            beats = []
            for name, rows in zip(agents, pipe.execute()):
                for process, text in rows.items():
                    host, _, pid = process.rpartition("|")
                    value = json.loads(text)
                    beats.append(Heartbeat(name, value["run_id"], int(pid), host, float(value["at"])))
            return sorted(beats, key=lambda beat: beat.at, reverse=True)

        return self._call(read)

    def record_start(self, agent: str, *, pid: int, host: str, now: float, spec: RestartSpec) -> StartCheck:
        args = [
            self.prefix, agent, f"{host}|{pid}", repr(float(now)), repr(float(spec.window_s)),
            str(spec.max_starts), repr(float(spec.cooldown_s)),
        ]
        count, until, tripped = self._call(
            lambda: self._record_start(keys=[self._base(agent)], args=args)
        )
        return StartCheck(int(count), float(until) if until else None, tripped == 1)

    def claim(
        self, agent: str, message_id: str, *, run_id: str, pid: int, host: str, now: float, ttl_s: float
    ) -> bool:
        value = json.dumps({"run_id": run_id, "pid": pid, "host": host, "claimed_at": now})
        args = [self.prefix, agent, message_id, repr(float(now)), repr(float(ttl_s)), value]
        return bool(self._call(lambda: self._claim(keys=[self._base(agent)], args=args)))

    def _runs_of(self, agent: str | None) -> list[tuple[str, str]]:
        """(run id, agent) of every run, or of one agent's."""
        index = self._client.hgetall(f"{self.prefix}:runs")
        return sorted((run_id, owner) for run_id, owner in index.items() if agent is None or owner == agent)

    def list_runs(self, agent: str | None = None) -> list[RunSummary]:
        """Last activity: the latest open reservation or heartbeat of the run, else its start
        (a settled ledger entry keeps no time)."""

        def read() -> list[RunSummary]:
            runs = self._runs_of(agent)
            pipe = self._client.pipeline(transaction=False)
            for run_id, owner in runs:
                pipe.hmget(self.key(owner, "run", run_id), list(_RUN_FIELD_NAMES))
                pipe.hvals(self.key(owner, "ledger", run_id))
            replies = pipe.execute()
            beats: dict[str, float] = {}
            for beat in self.heartbeats(agent):
                beats[beat.run_id] = max(beats.get(beat.run_id, 0.0), beat.at)
            summaries = []
            for index, (run_id, owner) in enumerate(runs):
                fields, entries = replies[2 * index], replies[2 * index + 1]
                if fields[3] is None:
                    continue
                run = _run_from(run_id, owner, fields)
                open_times = [float(entry.split("|")[4]) for entry in entries if entry.startswith("u|")]
                last = max([run.started_at, beats.get(run_id, 0.0), *open_times])
                summaries.append(RunSummary(run, last, len(open_times)))
            return sorted(summaries, key=lambda summary: summary.last_activity_at, reverse=True)

        return self._call(read)

    def open_reservations(self, agent: str | None = None, run_id: str | None = None) -> list[Reservation]:
        def read() -> list[Reservation]:
            runs = [(r, a) for r, a in self._runs_of(agent) if run_id is None or r == run_id]
            pipe = self._client.pipeline(transaction=False)
            for run, owner in runs:
                pipe.hgetall(self.key(owner, "ledger", run))
            found = []
            for (run, owner), entries in zip(runs, pipe.execute()):
                opened = {rid: entry for rid, entry in entries.items() if entry.startswith("u|")}
                found += [_reservation_from(rid, owner, run, entry) for rid, entry in opened.items()]
            return sorted(found, key=lambda item: item.created_at)

        return self._call(read)

    def reconcile(
        self, reservation_id: str, *, settle_as: str, reason: str, now: float
    ) -> Reconciliation | None:
        if settle_as not in ("reserved", "zero"):
            raise ValueError(f"settle_as must be 'reserved' or 'zero', got {settle_as!r}")
        found = [item for item in self.open_reservations() if item.reservation_id == reservation_id]
        if not found:
            return None
        (item,) = found
        cost = item.estimate_micros if settle_as == "reserved" else 0
        settled = self.settle(
            Settlement(
                reservation_id, item.agent, item.run_id, item.action, cost, now, Outcome.NEUTRAL,
                breaker_counts=False, tokens=None if settle_as == "reserved" else 0,
            )
        )
        if not settled.settled:
            return None  # settled in between by its process, or by another operator
        record = Reconciliation(reservation_id, item.agent, item.run_id, settle_as, cost, reason, now)
        row = json.dumps(dataclasses.asdict(record))
        self._call(lambda: self._client.rpush(f"{self.prefix}:reconciliations", row))
        return record

    def reconciliations(self, agent: str | None = None) -> list[Reconciliation]:
        rows = self._call(lambda: self._client.lrange(f"{self.prefix}:reconciliations", 0, -1))
        records = [Reconciliation(**json.loads(row)) for row in rows]
        return [record for record in records if agent is None or record.agent == agent]

    def daily_spend(self, agent: str | None = None, *, since_day: str = "") -> list[DaySpend]:
        def read() -> list[DaySpend]:
            rows = []
            for name in [agent] if agent is not None else self._agents():
                prefix = self.key(name, "day") + ":"
                for key in self._scan(name, "day"):
                    day = key[len(prefix):]
                    if day >= since_day:
                        fields = self._client.hmget(key, ["spent", "reserved", "tspent", "treserved"])
                        rows.append(DaySpend(name, day, *(int(value or 0) for value in fields)))
            return sorted(rows, key=lambda row: (row.day_key, row.agent))

        return self._call(read)

    def breakers(self, agent: str | None = None) -> list[tuple[str, str, BreakerRecord]]:
        def read() -> list[tuple[str, str, BreakerRecord]]:
            found = []
            for name in [agent] if agent is not None else self._agents():
                prefix = self.key(name, "breaker") + ":"
                for key in self._scan(name, "breaker"):
                    fields = self._client.hmget(key, ["state", "failures", "opened", "probe", "probe_exp"])
                    if fields[0] is not None:
                        found.append((name, key[len(prefix):], _breaker_from(fields)))
            return found

        return self._call(read)

    def agents(self) -> list[str]:
        return self._call(self._agents)

    # -- the books' identity and the declared caps ------------------------------------------------

    def identity(self, agent: str) -> StoreIdentity | None:
        fields = self._call(
            lambda: self._client.hmget(self.key(agent, "identity"), ["id", "created_at", "reset_reason"])
        )
        return _identity_from(agent, fields)

    def create_identity(self, agent: str, *, now: float) -> StoreIdentity:
        args = [self.prefix, agent, uuid.uuid4().hex, repr(float(now))]
        fields = self._call(lambda: self._create_identity(keys=[self._base(agent)], args=args))
        identity = _identity_from(agent, fields)
        assert identity is not None
        return identity

    def reset_identity(self, agent: str, *, now: float, reason: str, previous: str) -> StoreIdentity:
        identity = StoreIdentity(agent, uuid.uuid4().hex, now, reason)
        loss = BooksLoss(agent, now, reason, previous, identity.identity)

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            key = self.key(agent, "identity")
            pipe.delete(key)
            pipe.hset(key, mapping={"id": identity.identity, "created_at": repr(float(now)), "reset_reason": reason})
            pipe.rpush(self.key(agent, "losses"), json.dumps(dataclasses.asdict(loss)))
            pipe.sadd(f"{self.prefix}:agents", agent)
            pipe.execute()

        self._call(write)
        return identity

    def losses(self, agent: str | None = None) -> list[BooksLoss]:
        def read() -> list[BooksLoss]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.lrange(self.key(name, "losses"), 0, -1)
            rows = [BooksLoss(**json.loads(row)) for found in pipe.execute() for row in found]
            return sorted(rows, key=lambda loss: loss.at)

        return self._call(read)

    def pin_identity(self, agent: str, identity: str) -> None:
        self._pins[agent] = identity

    def declare_caps(self, declaration: CapDeclaration) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            key = self.key(declaration.agent, "caps")
            if declaration.empty:
                pipe.hdel(key, declaration.policy)
            else:
                caps = (_opt(declaration.daily_micros), _opt(declaration.hourly_micros))
                tokens = (_opt(declaration.daily_tokens), _opt(declaration.hourly_tokens))
                value = "|".join((*caps, repr(float(declaration.declared_at)), *tokens))
                pipe.hset(key, declaration.policy, value)
            pipe.sadd(f"{self.prefix}:agents", declaration.agent)
            pipe.execute()

        self._call(write)

    def cap_declarations(self, agent: str | None = None) -> list[CapDeclaration]:
        def read() -> list[CapDeclaration]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "caps"))
            found = []
            for name, rows in zip(agents, pipe.execute()):
                for policy, value in sorted(rows.items()):
                    daily, hourly, at, daily_tokens, hourly_tokens = (*value.split("|"), "", "")[:5]
                    caps = (int(daily) if daily else None, int(hourly) if hourly else None)
                    tokens = (int(daily_tokens) if daily_tokens else None,
                              int(hourly_tokens) if hourly_tokens else None)
                    found.append(CapDeclaration(name, policy, *caps, float(at), *tokens))
            return found

        return self._call(read)

    def drop_caps(self, agent: str, policy: str) -> int:
        return int(self._call(lambda: self._client.hdel(self.key(agent, "caps"), policy)))

    def durability_warnings(self) -> list[str]:
        """Asked once per handle: persistence off, or keys that may be evicted."""
        if self._durability is None:
            self._durability = self._call(self._check_durability)
        return list(self._durability)

    def _check_durability(self) -> list[str]:
        config: dict[str, str] = {}
        try:
            for name in ("appendonly", "save", "maxmemory", "maxmemory-policy"):
                config.update(self._client.config_get(name))
        except redis.ResponseError as exc:  # CONFIG disabled or not permitted (managed Redis)
            return [
                f"cannot tell whether the Redis store {self.url} keeps its data on disk (CONFIG GET"
                f" refused: {exc}); make sure it runs with appendonly yes (docs/redis.md)"
            ]
        warnings = []
        if config.get("appendonly") != "yes" and not config.get("save"):
            warnings.append(
                f"the Redis store {self.url} keeps nothing on disk (appendonly no, save \"\"): a restart"
                " forgets every budget and halt, and agentfuse then refuses calls until an operator"
                " acknowledges the loss; run Redis with appendonly yes (docs/redis.md)"
            )
        policy = config.get("maxmemory-policy", "noeviction")
        if config.get("maxmemory", "0") != "0" and policy != "noeviction":
            warnings.append(
                f"the Redis store {self.url} may evict keys (maxmemory-policy {policy}): an evicted"
                " window forgets its spend; use maxmemory-policy noeviction (docs/redis.md)"
            )
        return warnings

    def seen_record(self, folder: Path | None) -> tuple[Path, str] | None:
        """In the policy's ``.agentfuse/`` folder; a policy built in code has none."""
        if folder is None:
            return None
        return folder / ".agentfuse" / SEEN_FILE_NAME, self._books_key

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.disconnect()
        self._local = threading.local()
        self._client.close()


_RUN_FIELD_NAMES = (
    "parent", "pagent", "cap", "started", "spent", "reserved", "steps", "failures", "tcap", "tspent", "treserved"
)


def _reservation_from(reservation_id: str, agent: str, run_id: str, entry: str) -> Reservation:
    """An open ledger entry ``u|estimate[:tokens]|day|minute|created[|pid|host|action]`` (older ones
    lack the tokens, the process and action; the action is last, as it may hold a ``|``)."""
    fields = entry.split("|", 7)
    pid = int(fields[5]) if len(fields) > 6 and fields[5] else None
    host = fields[6] if len(fields) > 6 and fields[6] else None
    action = fields[7] if len(fields) > 7 else ""
    micros, _, tokens = fields[1].partition(":")
    return Reservation(
        reservation_id, agent, run_id, action, int(micros), float(fields[4]), pid, host, int(tokens or 0)
    )


def _halt_json(record: HaltRecord) -> str:
    return json.dumps(
        {
            "reason": record.reason,
            "source": record.source,
            "created_at": repr(float(record.created_at)),
            "figures": dict(record.figures),
        },
        default=str,
    )


def _gate_snapshot(reply: Sequence[Any]) -> tuple[GateSnapshot, float, int, str, str]:
    """Decode the gate script's reply: (state it decided on, its now, minute and day, its verdict)."""
    now, minute, verdict = float(reply[0]), int(reply[1]), reply[2]
    day_used, hour_used, attempts = int(reply[3]), int(reply[4]), int(reply[5])
    breaker_record = _breaker_from(reply[6:11])
    rate = _rate_from(reply[11], reply[12])
    halt_count = int(reply[13])
    position = 14
    halts = sorted(
        (_halt_from(*reply[position + 3 * index : position + 3 * index + 3]) for index in range(halt_count)),
        key=lambda halt: (halt.run_id, halt.agent),
    )
    position += 3 * halt_count
    chain_length = int(reply[position])
    position += 1
    chain = []
    for index in range(chain_length):
        run_id, agent, parent, *fields = reply[position + 12 * index : position + 12 * index + 12]
        chain.append(_run_from(run_id, agent, (parent, None, *fields)))
    position += 12 * chain_length
    day_key, daily, daily_by, hourly, hourly_by, daily_tokens, daily_tokens_by, hourly_tokens, hourly_tokens_by = reply[
        position : position + 9
    ]
    day_tokens, hour_tokens = int(reply[position + 9]), int(reply[position + 10])
    snapshot = GateSnapshot(
        chain=chain,
        halts=halts,
        breaker=breaker_record,
        rate=rate,
        day_micros=day_used,
        hour_micros=hour_used,
        action_failures=attempts,
        daily_declared=(int(daily), daily_by) if daily else None,
        hourly_declared=(int(hourly), hourly_by) if hourly else None,
        tokens=TokenWindows(
            day_tokens,
            hour_tokens,
            (int(daily_tokens), daily_tokens_by) if daily_tokens else None,
            (int(hourly_tokens), hourly_tokens_by) if hourly_tokens else None,
        ),
    )
    return snapshot, now, minute, day_key, verdict


def _identity_from(agent: str, fields: Sequence[Any]) -> StoreIdentity | None:
    identity, created_at, reset_reason = fields
    return None if identity is None else StoreIdentity(agent, identity, float(created_at), reset_reason or None)
