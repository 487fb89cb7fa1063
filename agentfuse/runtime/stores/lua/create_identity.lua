-- BooksStore.create_identity: a NewIdentity record. The agent's books' identity unless one exists.
local req = wire[2]  --: NewIdentity
local key = base(req.agent) .. ':identity'
if redis.call('EXISTS', key) == 0 then redis.call('HSET', key, 'id', req.identity, 'created_at', req.created_at) end
return redis.call('HMGET', key, 'id', 'created_at', 'reset_reason')
