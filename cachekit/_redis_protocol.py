"""The Redis side of the shared tier's protocol: what Redis holds (entries and load locks,
under `<base>:v`; refresh locks under `<base>:r`), the Lua scripts that change it, how
asking it can fail, and the waiting times both the tier and its loads use. See the design
note in `cachekit.redis`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

_Command = Callable[[], Coroutine[Any, Any, None]]  # sends one command (or sends it again)

_ERRORS: Final = (RedisError, OSError, TimeoutError)
_POLL_MIN: Final = 0.01  # seconds between polls while the subscription is down, doubling
_POLL_MAX: Final = 0.2
_MARGIN: Final = 0.005  # seconds past a lease's end before a waiter asks again
_RESUBSCRIBE_MAX: Final = 1.0
_REFRESH_ROUNDS: Final = 3  # looks at a key another worker refreshes, before giving up
_RECALIBRATE: Final = 30.0  # seconds between readings of Redis's clock
_LOCK: Final = b"lock:"  # a key holding this prefix is loading; payloads start with b"ck"

# KEYS: key. ARGV: lock, lease ms. -> the entry, another worker's lock, or nil: the lock is
# ours. What `SET key lock NX GET PX lease` does natively from Redis 7.0; kept for 6.2.
_ACQUIRE: Final = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# A waiter marks a lock it waits for by appending " <its worker id>" (see _WATCH): a load's
# end is published to the wake-up channel of each worker listed there, and to nobody else,
# so a load costs one message per waiting worker, none when nobody waits, whatever the
# size of the fleet. Invalidations and clears stay broadcast on the one events channel.
#
# Lua prelude of the scripts below. `ours(v, lock)`: the key holds the lock, marked or not.
# `wake(v, lock, channel prefix, message)` publishes to every worker marked on `v`.
# `restore(key, v, probation ms)` puts back a value a SET ... GET replaced although it was
# not ours: a lock for one probation (its holder renews it, fenced by its value), an entry until
# its own expiry (the header's bytes 6 to 13, big-endian unix ms; 0: none), anything else
# deleted (deleting is always safe in a cache: it is reloaded).
_LUA: Final = """
local function ours(v, lock)
  return v == lock or (v and string.sub(v, 1, #lock + 1) == lock .. ' ')
end
local function wake(v, lock, prefix, message)
  if not v or v == lock then return end
  for worker in string.gmatch(string.sub(v, #lock + 2), '%S+') do
    redis.call('PUBLISH', prefix .. worker, message)
  end
end
local function restore(key, v, probation)
  if string.sub(v, 1, 5) == 'lock:' then
    redis.call('SET', key, v, 'PX', probation)
    return
  elseif #v >= 13 and string.sub(v, 1, 2) == 'ck' then
    local at = 0
    for i = 6, 13 do at = at * 256 + string.byte(v, i) end
    local ok
    if at == 0 then
      ok = redis.pcall('SET', key, v)
    else  -- (an expiry Redis refuses, from a crafted header: deleted below instead)
      ok = redis.pcall('SET', key, v, 'PXAT', string.format('%.0f', at))
    end
    if type(ok) ~= 'table' or not ok.err then return end
  end
  redis.call('DEL', key)
end
local function put(key, lock, payload, at, prefix, message, probation)
  local v
  if at == '0' then
    v = redis.call('SET', key, payload, 'XX', 'GET')
  else
    v = redis.call('SET', key, payload, 'XX', 'GET', 'PXAT', at)
  end
  if not v then return 0 end
  if not ours(v, lock) then
    restore(key, v, probation)
    return 0
  end
  wake(v, lock, prefix, message)
  return 1
end
"""
# KEYS: key. ARGV: lock, payload, expiry (unix ms on Redis's clock; 0: none), wake-up
# channel prefix, message, probation ms. A load's store: the entry replaces the lock only
# while the lock is still ours. One SET ... XX GET: it replaces whatever is there and says
# what that was; in the rare case it was not our lock, that is put back (or, gone, nothing
# was written: XX). So a store costs 2 commands as Redis counts them, not 3.
_PUT: Final = _LUA + "return put(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])"
# KEYS: the keys of a bulk load (one node: not on a Cluster). ARGV: wake-up channel prefix,
# probation ms, then for each key: lock, payload, expiry, message. -> a list of 0/1, as
# _PUT for each: a bulk load's stores in one command, plus one SET per key.
_PUT_MANY: Final = (
    _LUA
    + """
local out = {}
for i = 1, #KEYS do
  local at = 2 + 4 * (i - 1)
  out[i] = put(KEYS[i], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[1], ARGV[at + 4], ARGV[2])
end
return out
"""
)
# KEYS: key. ARGV: payload, expiry, channel, message. set(): the entry replaces whatever is
# there, a load's lock included (so that load can no longer store); the message (an
# invalidation) is broadcast.
_WRITE: Final = """
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""
# KEYS: key. ARGV: lock, wake-up channel prefix, message. Gives the lock up without a value.
_RELEASE: Final = (
    _LUA
    + """
local v = redis.call('GET', KEYS[1])
if not ours(v, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
wake(v, ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)
# KEYS: key. ARGV: lock, lease ms.
_RENEW: Final = (
    _LUA
    + """
local v = redis.call('GET', KEYS[1])
if not ours(v, ARGV[1]) then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
)
# KEYS: key. ARGV: the value a waiter found (a lock, maybe marked), that value with the
# waiter's worker id appended. -> 1: it is now marked (its end will be published to that
# worker); else what the key held (an entry, another lock, or nil), now put back.
_WATCH: Final = """
local v = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'GET', 'KEEPTTL')
if v == ARGV[1] then return 1 end
if v then redis.call('SET', KEYS[1], v, 'KEEPTTL') end
return v
"""
# KEYS: key, its refresh lock. ARGV: lock, probation ms, SHA-1 of the entry this worker
# holds ('': none). -> {0}: no entry (nothing, or a load's lock); {3, entry}: not the one
# this worker holds (another worker refreshed or set it since: adopt it); {1, entry}: the
# refresh lock is ours; {2, entry, refresh lock}: another worker refreshes it.
_REFRESH: Final = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 5) == 'lock:' then return {0} end
if ARGV[3] ~= '' and redis.sha1hex(v) ~= ARGV[3] then return {3, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, v} end
return {2, v, redis.call('GET', KEYS[2])}
"""
# KEYS: key, its refresh lock. ARGV: the entry the refresh saw, the new one, its expiry
# (0: none), wake-up channel prefix, message, refresh lock, probation ms. The new entry
# replaces the one seen only if it is still there (not invalidated, not set() since); as
# in _PUT, one SET ... XX GET and one GETDEL, what they took by mistake put back: 3
# commands as Redis counts them. Nothing is broadcast:
# the workers waiting for this refresh (marked on its lock) are woken; every other worker
# keeps what it serves until its own refresh finds the new entry ({3, ...} above), so a
# refresh costs O(workers that use the key), not O(fleet).
_REFRESHED: Final = (
    _LUA
    + """
local stored = 1
local v
if ARGV[3] == '0' then
  v = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'GET')
else
  v = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'GET', 'PXAT', ARGV[3])
end
if v ~= ARGV[1] then  -- (rare) not the entry it saw: put that back
  stored = 0
  if v then restore(KEYS[1], v, ARGV[7]) end
end
local r = redis.call('GETDEL', KEYS[2])
if ours(r, ARGV[6]) then
  wake(r, ARGV[6], ARGV[4], ARGV[5])
elseif r then
  redis.call('SET', KEYS[2], r, 'PX', ARGV[7])
end
return stored
"""
)
# KEYS: key. ARGV: channel, message. Entry or lock: a load in flight can no longer store.
_INVALIDATE: Final = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""
# KEYS: key. ARGV: the payload that was rejected (deleted only if it is still there).
_DISCARD: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class _BadReply(RedisError):
    """Redis, or whatever answers in its place, replied with a type the command never
    returns: treated as a failed command (degrade: the caller never sees it)."""


class _Unavailable(Exception):
    """Internal: Redis could not be asked (`cause` is None while the circuit is open).
    `sent`: the command may have reached Redis (it had its connection slot), so what it
    would have done there may be done (a lock taken)."""

    def __init__(self, cause: BaseException | None, sent: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.sent = sent


def _circuit_open() -> RedisConnectionError:
    """What a caller gets under on_error="raise" while the circuit is open: at once."""
    return RedisConnectionError("Redis is unavailable: the circuit is open after repeated failures")
