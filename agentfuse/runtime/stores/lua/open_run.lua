-- Store.open_run: an OpenRun record. Creates the run unless it exists; returns its row.
local req = wire[2]  --: OpenRun
local agent, run_id = req.agent, req.run_id
local index = prefix .. ':runs'
local owner = redis.call('HGET', index, run_id)
if not owner then
  local started = clock_now(req.now)
  local latest = latest_of(base(agent))
  if latest > started then started = latest end
  local fields = {'started', fmt(started), 'spent', 0, 'reserved', 0, 'steps', 0, 'failures', 0}
  if req.parent_id then
    local parent_agent = redis.call('HGET', index, req.parent_id)
    if not parent_agent then return {'noparent'} end
    table.insert(fields, 'parent'); table.insert(fields, req.parent_id)
    table.insert(fields, 'pagent'); table.insert(fields, parent_agent)
  end
  if req.cap_micros then table.insert(fields, 'cap'); table.insert(fields, int(req.cap_micros)) end
  if req.token_cap then table.insert(fields, 'tcap'); table.insert(fields, int(req.token_cap)) end
  redis.call('HSET', base(agent) .. ':run:' .. run_id, unpack(fields))
  redis.call('HSET', index, run_id, agent)
  redis.call('SADD', prefix .. ':agents', agent)
  owner = agent
end
local row = redis.call('HMGET', base(owner) .. ':run:' .. run_id, unpack(RUN_FIELDS))
return {'ok', owner, unpack(row)}
