-- Store.settle: one Settlement record.
local settled = settle_one(wire[2])
if not settled then return {'unknown'} end
return {'ok', unpack(settled)}
