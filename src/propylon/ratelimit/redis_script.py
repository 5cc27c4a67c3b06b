"""The Lua script that decides every limit of one request in one round trip.

It mirrors ``MemoryBackend.decide`` (memory.py) step for step: only integer
additions and comparisons, exact in Lua's doubles below 2**53.

KEYS: one per limit (all under one hash tag, so Redis Cluster accepts the
multi-key call). ARGV[1]: the clock in microseconds, or "" to read Redis'
own ``TIME`` (production: one clock for every node, so skew between gateway
hosts cannot shift anyone's limits; tests pass their own clock to compare the
backends). ARGV[2]: mode (0 peek, 1 all or none, 2 each that passes). Then two
numbers per key: the emission interval and the capacity (microseconds).

Reply: {now, all_passed, passed_1, ahead_1, passed_2, ahead_2, ...}. A key
is stored with an expiry one second past its TAT (it is at rest by then
anyway; the slack keeps a caller-supplied clock that runs slower than Redis'
from seeing keys vanish early).
"""

from __future__ import annotations

SOURCE = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local mode = tonumber(ARGV[2])
local out = {now, 1}
local tats = {}
local everything = true
for i = 1, #KEYS do
  local interval = tonumber(ARGV[1 + 2 * i])
  local capacity = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  local new_tat = tat + interval
  local ok = 1
  if new_tat - now > capacity then
    ok = 0
    new_tat = tat
    everything = false
  end
  tats[i] = new_tat
  out[1 + 2 * i] = ok
  out[2 + 2 * i] = new_tat - now
end
if not everything then out[2] = 0 end
for i = 1, #KEYS do
  if (mode == 1 and everything) or (mode == 2 and out[1 + 2 * i] == 1) then
    local ttl = math.ceil((tats[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
  end
end
return out
"""
