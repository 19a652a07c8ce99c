"""RedisTier: a shared tier on Redis, so that many processes share results and load each
key once between them. The only cachekit module that imports redis (`cachekit-async[redis]`).

Design note.

Keys. A cache key of cache `name` is `base = ck:<namespace>:<name>:{<digest>}`, where the
digest is SHA-256 of a stable encoding of the key (see `_shared.encode_key`). One Redis key,
`base:v`, holds either the entry (a sealed payload) or, while it loads, its load lock
(`lock:<worker>:<n>`, unique fleet-wide): one key, one Cluster slot for every script below.

A load, fleet-wide. On an L1 miss, the flight (one per key per process) sends one native
command, `SET base:v <lock> NX GET PX <probation>`: it answers the entry (a hit), or another
worker's lock (wait), or nothing, in which case the lock is now ours. A hit costs what a
GET costs, because the payload carries its own expiry (unix ms on Redis's clock, the PXAT
it was stored with): the L1 entry lands with what is left of it, measured against an upper
bound of Redis's clock (`RedisTier._redis_now`), so it never outlives the Redis entry. The
holder loads, renews its lock while loading (the first renewal, after probation/3, proves
the load alive and extends the lock to a full lease; then every lease/3), and PUTs: the
entry replaces the lock only if the lock is still its own (a fenced write: one SET ... XX
GET in a script, which puts back what it replaced in the rare case that was not its lock).
A worker that finds the lock and waits appends its id to the lock's value (`_WATCH`); the
PUT publishes `d <base>` to the wake-up channel of each worker so listed, and to nobody
when nobody waits. So a load costs 3 commands as INFO commandstats counts them (SET NX GET,
EVALSHA, SET), plus one message per waiting worker. Waiters wait on a future that the
tier's one subscription (its events channel and its own wake-up channel) resolves on
`d <base>` (no pool connection is held while waiting); they wake at the latest one
probation later, and ask again: a dead
holder's lock has lapsed by then, and exactly one of them takes it over (NX). If the
subscription is down, waiters poll with backoff. An acquire that timed out may still run
in Redis later, and a store that failed leaves its lock: either way the lock is released
(fenced by its value) as soon as Redis answers, and lapses after one probation (1 s, or 4
op_timeouts) at worst, not after a lease.

Invalidation. INVALIDATE deletes the key, entry or lock (so a load in flight cannot write
after it) and publishes `i <worker> <base>`; CLEAR is SCAN + UNLINK over the cache's own
prefix, then `c <worker> <prefix>`. Each worker drops the key from its L1 (through the
cache's `_invalidate_here`/`_clear_here`). A worker whose subscription was broken clears
its L1 when it resubscribes: it may have missed invalidations meanwhile.

Failure. Every command is bounded by `op_timeout`, its wait for a connection slot
included. With on_error="degrade", a failed command counts in `shared_errors` and the call
goes on in-process (L1 and the in-process flight); with on_error="raise", the caller gets
the Redis error (never cached). In both, three failures in a row open a circuit for
`cooldown` seconds, during which calls skip Redis altogether (raise: fail at once); one
warning is logged per outage. Invalidations, sets and clears issued during an outage are
queued, one per key, and sent again in batches when Redis answers.

Payloads are `_shared.seal`ed: a versioned header and, with a secret, an HMAC-SHA256 over
header, key and body. A payload that fails the check is a miss and is deleted; it never
reaches the serializer. Cached failures are cachekit's own JSON (type path and arguments).

Event loops. Every loop that uses the tier gets a lane: the tier itself on the first loop,
on each other loop running at the same time a sibling with its own client and subscription
(a connection belongs to the loop that opened it) and the same worker id, caches and
secrets (`_sibling`). Each lane has its own wake-up channel, so a load's end reaches the
loop that waits for it. Invalidations, sets and clears run on the caller's lane, ordered
per key across lanes (a command, or a read, waits for the commands of that key still in
progress on any lane, through a thread-safe future: `_after`). Measured
(`python -m benchmarks.loop_handoff`): a GET from a second loop on its own client costs
66-71 us; handed to the first loop's thread (run_coroutine_threadsafe), 124-129 us,
1.7-1.9x, and it would stall whenever that loop is busy or gone. When a lane's loop ends
(asyncio.run cancels its tasks), the lane closes its connections and serves the next new
loop; commands cut off by the end, and invalidations issued while no loop runs the tier,
are queued and sent by that next lane.
Never dropped. (A Cluster client cannot be copied for a lane: on a second loop at once,
calls there stay in-process, logged once.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import hashlib
import hmac
import inspect
import itertools
import logging
import math
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping, Sequence
from functools import partial
from typing import Any, Final, final

try:
    from redis.asyncio import ConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "cachekit.redis needs redis-py: install the extra with  pip install 'cachekit-async[redis]'"
    ) from exc

from ._bounds import Deadlines, Slots
from ._options import check_seconds
from ._shared import (
    ERROR,
    SEAL_OVERHEAD,
    VALUE,
    BadPayload,
    InsecurePickleSerializer,
    JSONSerializer,
    Landed,
    PickleSerializer,
    SharedCache,
    SharedError,
    SharedFailure,
    check_name,
    check_secrets,
    decode_error,
    encode_error,
    insecure_pickle,
    key_digest,
    seal,
    unseal,
)

__all__ = [
    "RedisTier",
    "JSONSerializer",
    "PickleSerializer",
    "InsecurePickleSerializer",
    "insecure_pickle",
    "SharedError",
]

log = logging.getLogger("cachekit.redis")

_Command = Callable[[], Coroutine[Any, Any, None]]  # sends one command (or sends it again)

_ERRORS: Final = (RedisError, OSError, TimeoutError)
_TRIP: Final = 3  # consecutive failures that open the circuit (degrade mode)
_POLL_MIN: Final = 0.01  # seconds between polls while the subscription is down, doubling
_POLL_MAX: Final = 0.2
_MARGIN: Final = 0.005  # seconds past a lease's end before a waiter asks again
_PROBATION: Final = 1.0  # seconds a new lock lasts (at least 4 op_timeouts) until renewed
_RESUBSCRIBE_MAX: Final = 1.0
# op_timeouts of silence after which the subscription is PINGed; as long again without
# any answer and it counts as broken (a peer that vanished without closing the connection):
# a silent subscription is noticed within 2 * _IDLE op_timeouts (1 s by default).
_IDLE: Final = 2
# Invalidations, sets and clears waiting for Redis to answer again, one per key (the
# latest): past this many, each cache's are collapsed into one clear of that cache.
_UNSENT_MAX: Final = 10_000
_REFRESH_ROUNDS: Final = 3  # looks at a key another worker refreshes, before giving up
_RESEND_BATCH: Final = 256  # commands resent at a time, each batch awaited before the next
_MAX_SLOTS: Final = 128  # concurrent commands when the client's pool is unbounded
_RECALIBRATE: Final = 30.0  # seconds between readings of Redis's clock
_PLAUSIBLE_MS: Final = 1_577_836_800_000  # 2020-01-01: a TIME reading before it is not one
_DRIFT: Final = 1e-3  # how fast Redis's clock may run ahead of ours (NTP slews at most 5e-4)
_LOCK: Final = b"lock:"  # a key holding this prefix is loading; payloads start with b"ck"


@final
class _Unopened:
    """`_Binding._load_with`'s `opened` by default: the payload it starts from, if any, has
    not been opened yet."""

    __slots__ = ()


_UNOPENED: Final = _Unopened()

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


_NEEDS_SECRET: Final = (
    "secret is required with {what}: without one, anyone who can write to this Redis "
    "{harm} in every worker. Pass secret=<at least 16 random bytes> (a list to rotate "
    "them), or serializer=JSONSerializer() (plain data: cannot run code, though values "
    "can still be forged), or serializer=insecure_pickle to accept unsigned pickle"
)


def _check_serializer(serializer: Any, signing: tuple[bytes, ...], namespace: str) -> Any:
    """The serializer to use. Nothing read from Redis is deserialized unauthenticated
    unless the serializer says so by name, and that is logged (once, here)."""
    if serializer is None:
        if not signing:
            raise ValueError(
                _NEEDS_SECRET.format(what="the default (pickle) serializer", harm="runs code")
            )
        return PickleSerializer()
    if not (
        callable(getattr(serializer, "dumps", None))
        and callable(getattr(serializer, "loads", None))
    ):
        raise TypeError(f"serializer must have dumps() and loads(), got {serializer!r}")
    if signing:
        return serializer
    if isinstance(serializer, InsecurePickleSerializer):
        log.warning(
            "cachekit: RedisTier(namespace=%r) unpickles unsigned payloads "
            "(serializer=insecure_pickle): anyone who can write to this Redis runs code in "
            "every worker",
            namespace,
        )
    elif isinstance(serializer, JSONSerializer):
        log.warning(
            "cachekit: RedisTier(namespace=%r) has no secret: JSON payloads cannot run code, "
            "but anyone who can write to this Redis can forge values and cached failures",
            namespace,
        )
    else:
        raise ValueError(
            _NEEDS_SECRET.format(what=f"serializer={serializer!r}", harm="may be able to run code")
        )
    return serializer


@final
class _Notices:
    """Warnings that can repeat on every call (a payload rejected, a value that cannot be
    serialized): the first of each kind, then at most one per `period` of `clock`, saying
    how many were not logged in between. (Each is counted in shared_errors as well.)"""

    def __init__(self, clock: Callable[[], float], period: float = 60.0) -> None:
        self.clock = clock
        self.period = period
        # kind -> (when it was last logged, how many of it were not logged since)
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, message: str, *args: Any) -> None:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last[0] < self.period:
            self._last[kind] = (last[0], last[1] + 1)
            return
        self._last[kind] = (now, 0)
        unlogged = 0 if last is None else last[1]
        log.warning(message + " (%d more not logged since the last)", *args, unlogged)


class _BadReply(RedisError):
    """Redis, or whatever answers in its place, replied with a type the command never
    returns: treated as a failed command (degrade: the caller never sees it)."""


class _Unavailable(Exception):
    """Internal: Redis could not be asked (`cause` is None while the circuit is open)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(cause)
        self.cause = cause


@final
class RedisTier:
    """A Redis shared by many processes, for caches built with `shared=tier`.

    `client` is a `redis.asyncio.Redis` (decode_responses=False); `RedisTier.from_url`
    makes one. The tier does not close a client it was given; `aclose()` closes its own.
    Bad options raise at construction, naming the option and the value. Durations are
    seconds, as a number or a datetime.timedelta.

    Options (keyword-only):

    namespace: str = 'cachekit'
        The first part of every Redis key and of the pub/sub channel; no ":".
    secret: bytes | Sequence[bytes] | None = None
        HMAC key(s), 16 bytes or more: every payload and broadcast is signed with the first
        and checked against all (rotate by putting the new one first). Required with the
        default pickle serializer; nothing unauthenticated is ever unpickled.
    serializer: Any = None
        An object with dumps(value) -> bytes and loads(bytes). None: pickle (needs a
        secret). JSONSerializer() cannot run code (without a secret, values can still be
        forged); insecure_pickle opts into unsigned pickle by name, and is logged.
    lock_lease: float = 10.0
        Seconds a load's lock lives without renewal (>= 0.01); a running load renews it
        every third of that. A new lock first lives a probation (1 s, or 4 op_timeouts).
    wait_timeout: float | None = None
        Seconds a worker waits for another worker's load before loading on its own (plus
        one lease for a dead one). None: lock_lease.
    op_timeout: float = 0.25
        Seconds each Redis command may take, its wait for a connection included (> 0).
    on_error: str = 'degrade'
        "degrade": a failing Redis makes caches answer in-process, never failing a call;
        "raise": callers get the Redis error (never cached).
    max_value_bytes: int = 1048576
        Payloads larger than this stay in L1 only, and larger ones read are misses, never
        deserialised (an int > 0).
    cooldown: float = 1.0
        Seconds Redis is skipped after three failures in a row (raise mode: calls fail at
        once meanwhile).
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "cachekit",
        secret: bytes | Sequence[bytes] | None = None,
        serializer: Any = None,
        lock_lease: float = 10.0,
        wait_timeout: float | None = None,
        op_timeout: float = 0.25,
        on_error: str = "degrade",
        max_value_bytes: int = 1 << 20,
        cooldown: float = 1.0,
    ) -> None:
        if not (hasattr(client, "register_script") and hasattr(client, "pubsub")):
            raise TypeError(f"client must be a redis.asyncio.Redis, got {client!r}")
        pool = getattr(client, "connection_pool", None)
        if pool is not None and pool.connection_kwargs.get("decode_responses"):
            raise ValueError("client must be built with decode_responses=False, got True")
        self.namespace = check_name("namespace", namespace)
        signing = check_secrets(secret)
        serializer = _check_serializer(serializer, signing, namespace)
        lease = check_seconds("lock_lease", lock_lease, allow_none=False)
        assert lease is not None
        if lease < 0.01:
            raise ValueError(f"lock_lease must be >= 0.01 seconds, got {lock_lease!r}")
        wait = check_seconds("wait_timeout", wait_timeout)
        timeout = check_seconds("op_timeout", op_timeout, allow_none=False)
        if not timeout:
            raise ValueError(f"op_timeout must be > 0 seconds, got {op_timeout!r}")
        if on_error not in ("degrade", "raise"):
            raise ValueError(f"on_error must be 'degrade' or 'raise', got {on_error!r}")
        if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
            raise TypeError(f"max_value_bytes must be an int, got {max_value_bytes!r}")
        if max_value_bytes <= 0:
            raise ValueError(f"max_value_bytes must be > 0, got {max_value_bytes!r}")
        self._client = client
        self._owns_client = False
        self._secret = signing  # the first signs; every one verifies; () for none
        self._serializer = serializer
        self._lease = lease
        self._lease_ms = max(1, int(lease * 1000))
        # A new lock's first lease, until its load proves alive by renewing it (then
        # `lease`): an acquire that timed out here may still run in Redis later, and
        # nobody would renew or release what it takes.
        self._probation = min(lease, max(_PROBATION, 4 * timeout))
        self._probation_ms = max(1, int(self._probation * 1000))
        # The acquire's constant arguments, encoded once: redis-py encodes each str or int
        # argument of every command anew (a hit is that one command, see `_acquire`).
        self._acquire_tail = (b"NX", b"GET", b"PX", str(self._probation_ms).encode())
        self._wait_timeout = lease if wait is None else wait
        self._op_timeout: float = timeout
        self._raise = on_error == "raise"
        self._max_value_bytes = max_value_bytes
        self._cooldown = check_seconds("cooldown", cooldown, allow_none=False) or 0.0
        self._channel = f"ck:{namespace}:events"  # invalidations and clears, to every worker
        self._worker = secrets.token_hex(8)  # tells this tier's own broadcasts apart
        # A load's end goes to the workers that wait for it only, each on its own channel.
        self._wake_prefix = f"ck:{namespace}:wake:"
        self._wake_channel = self._wake_prefix + self._worker  # (a lane's: `_sibling`)
        self._locks = itertools.count()  # with _worker: a lock value unique in the fleet
        self._native_acquire = True  # False once Redis turned SET NX GET down (< 7.0)
        slots = getattr(pool, "max_connections", None) or _MAX_SLOTS
        self._slots = max(1, min(slots, _MAX_SLOTS))
        self._scripts = {
            name: client.register_script(text)
            for name, text in (
                ("acquire", _ACQUIRE),
                ("put", _PUT),
                ("put_many", _PUT_MANY),
                ("write", _WRITE),
                ("release", _RELEASE),
                ("renew", _RENEW),
                ("watch", _WATCH),
                ("invalidate", _INVALIDATE),
                ("discard", _DISCARD),
                ("refresh", _REFRESH),
                ("refreshed", _REFRESHED),
            )
        }

        # Set once, on first use: everything below belongs to that loop's thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Bounds the commands in progress to the pool's size, so a stampede queues here
        # (op_timeout counts once a command has its turn) instead of exhausting the pool.
        self._ending = False  # the loop is ending: see _let_go
        self._free: Slots | None = None  # the loop's connection slots
        self._deadlines: Deadlines | None = None  # op_timeout for its commands
        self._sub_client: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = False  # the subscription is confirmed and reading
        # A load read Redis while the subscription was not listening: what it read may be
        # invalidated unheard, so the L1 starts afresh once it listens (`_listen`).
        self._read_unheard = False
        self._started: asyncio.Event | None = None  # set at the first subscription's outcome
        # base -> futures of this process's flights waiting for another worker's load of
        # it. A flight adds its future before asking for the lock and removes it itself;
        # a "done" or "invalidated" broadcast pops and resolves the whole set.
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        # cache prefix -> the caches of that name in this process. Weak: a cache and its
        # binding refer to each other and go together.
        self._bindings: dict[str, weakref.WeakSet[_Binding]] = {}
        # base or cache prefix -> the last command sent for it (set, invalidate, clear). A
        # read of that key waits for it first, so a call after invalidate() never reads what
        # it deletes; a newer command for it waits for it too (`_in_order`), so Redis applies
        # them in the order issued. A task removes itself when done, if still registered.
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Tasks started and not yet seen to finish: invalidations, clears, releases
        # (`_background`, awaited by settle()) and lease renewals (cancelled by their loads).
        self._background: set[asyncio.Task[Any]] = set()
        self._renewals: set[asyncio.Task[Any]] = set()  # and the resender: never settled
        # tag -> how to send again an invalidation, clear or set() that missed Redis (a
        # set() is resent as an invalidation): at most one per tag, the latest, and at most
        # _UNSENT_MAX (then a cache's keys give way to one clear of its prefix, and a key
        # whose cache has a clear waiting is not added). `_resender` sends them while any
        # is left; a newer command for the same tag takes its entry out (`_start_pending`).
        self._unsent: dict[str, _Command] = {}
        self._resender: asyncio.Task[None] | None = None
        # Redis's clock, read on this loop's clock: TIME answered `_clock_ms` (unix ms) to a
        # reading sent at loop time `_clock_read_at` (-inf: never read). One reading at a
        # time, `_clock_reading`, started when the last is _RECALIBRATE old.
        self._clock_ms = 0.0
        self._clock_read_at = -math.inf
        self._clock_reading: asyncio.Task[None] | None = None
        # Circuit: consecutive failures, the loop time until which calls skip Redis, and
        # whether the current outage has been logged.
        self._failures = 0
        self._open_until = 0.0
        self._outage = False
        self._notices = _Notices(time.monotonic)  # repeated warnings, one a minute per kind
        self._logged_foreign_loop = False
        self._logged_offline = False
        # Every loop that uses the tier at the same time gets a lane: this tier on its first
        # loop, a sibling (`_sibling`: its own client and subscription, the same worker id,
        # caches and secrets) on each other one. A lane whose loop ended serves the next
        # new loop. `_mark` names the lane in lock marks and its wake-up channel.
        self._home = self
        self._lanes: list[RedisTier] = []
        self._lanes_lock = threading.Lock()
        self._lane_ids = itertools.count(1)
        self._mark = self._worker

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 50, **options: Any) -> RedisTier:
        """A tier over its own client for `url` (closed by `aclose()`): at most
        `max_connections` connections, no client-side retries (op_timeout bounds each
        command instead)."""
        client = Redis.from_url(url, max_connections=max_connections, retry=Retry(NoBackoff(), 0))
        tier = cls(client, **options)
        tier._owns_client = True
        return tier

    def key_of(self, name: str, key: Hashable) -> str:
        """The Redis key holding `key`'s entry (or its load lock) for the cache named `name`
        (for inspection)."""
        return f"ck:{self.namespace}:{name}:{{{key_digest(name, key)}}}:v"

    def __repr__(self) -> str:
        return f"<RedisTier namespace={self.namespace!r} client={self._client!r}>"

    # ------------------------------------------------------------------ the protocol

    def attach(self, name: str, cache: SharedCache) -> _Binding:
        """Called by AsyncCache(shared=self, name=...)."""
        check_name("name", name)
        binding = _Binding(self, name, cache)
        self._bindings.setdefault(binding.prefix, weakref.WeakSet()).add(binding)
        return binding

    async def settle(self) -> None:
        """Wait until every invalidation, clear and lock release sent so far, from any
        event loop, is done."""
        while True:
            # Done tasks leave the set in a done callback, which runs only once the loop
            # turns; on 3.12+ gather() of done tasks returns without turning it, so waiting
            # for the set to empty would spin forever. Wait for the unfinished ones only.
            pending = [t for lane in self._everyone() for t in list(lane._background)]
            pending = [task for task in pending if not task.done()]
            if not pending:
                return
            for task in pending:
                await _after(task, self._op_timeout * 4)

    async def aclose(self) -> None:
        """Finish pending invalidations, stop listening on every loop, close the clients
        that are the tier's own. Caches keep working afterwards, in this process only."""
        home = self._home
        if home is not self:
            return await home.aclose()
        if self._closed:
            return
        for lane in self._everyone():
            loop = lane._loop
            if loop is None or loop.is_closed():
                await lane._aclose_idle()
            elif loop is asyncio.get_running_loop():
                await lane._aclose_here()
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(lane._aclose_here(), loop)
                try:
                    async with asyncio.timeout(self._op_timeout * 8):
                        await asyncio.wrap_future(future)
                except TimeoutError:
                    lane._closed = True
            else:  # its loop is stopped, not closed: nothing can run there now
                lane._closed = True

    async def _aclose_idle(self) -> None:
        """aclose() of a lane whose loop has ended (its end disconnected its connections,
        `_let_go`): close its clients from here."""
        self._closed = True
        clients = [self._sub_client] if self._sub_client is not self._client else []
        if self._owns_client:
            clients.append(self._client)
        for client in clients:
            if client is not None:
                try:
                    await client.aclose(close_connection_pool=True)
                except (*_ERRORS, RuntimeError):  # (a connection its ended loop opened late
                    pass  # cannot be closed from here: "Event loop is closed")

    def _everyone(self) -> list[RedisTier]:
        """The tier's lanes: itself and its siblings."""
        home = self._home
        return [home, *home._lanes]

    async def _aclose_here(self) -> None:
        """aclose() of one lane, on its own loop."""
        if self._closed:
            return
        if self._loop is not None:
            try:
                async with asyncio.timeout(self._op_timeout * 4):
                    await self.settle()
            except TimeoutError:
                pass
        self._closed = True
        tasks = [*self._background, *self._renewals]  # the clock's reading is in _background
        if self._listener is not None:
            tasks.append(self._listener)
        for task in tasks:
            task.cancel()
        if tasks:
            # redis-py can lose a cancellation that lands as a pub/sub read times out: the
            # listener then reads on (it stops once it sees _closed) until its connection
            # is closed under it.
            _, stuck = await asyncio.wait(tasks, timeout=self._op_timeout * 4)
            if stuck and self._sub_client is not None and self._sub_client is not self._client:
                await self._sub_client.connection_pool.disconnect()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._wake_all()
        if self._sub_client is not None and self._sub_client is not self._client:
            await self._sub_client.aclose(close_connection_pool=True)
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    # ------------------------------------------------------------------ commands

    def _here(self) -> RedisTier | None:
        """The lane of the running loop (binding one if it has none), or None when this
        call cannot use Redis: the tier is closed, or it is a second loop of a Cluster
        client (which cannot be copied for a lane: logged once)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return None if self._closed else self
        for lane in self._lanes:
            if lane._loop is loop:
                return None if lane._closed else lane
        return self._lane_for(loop)

    def _lane(self) -> RedisTier:
        """The lane of the running loop, which has one (a task of it is running)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return self
        for lane in self._home._lanes:
            if lane._loop is loop:
                return lane
        return self

    def _lane_for(self, loop: asyncio.AbstractEventLoop) -> RedisTier | None:
        """Bind a lane to `loop`: this tier if its loop has ended, else a sibling whose loop
        has ended, else a new sibling. It takes over what idle lanes left unsent."""
        with self._lanes_lock:
            if self._closed:
                return None
            for lane in self._everyone():
                if lane._loop is loop:
                    return lane
            idle = [lane for lane in self._everyone() if lane._idle()]
            if self in idle:
                lane = self
            elif idle:
                lane = idle[0]
            elif getattr(self._client, "connection_pool", None) is None:
                if not self._logged_foreign_loop:
                    self._logged_foreign_loop = True
                    log.warning(
                        "cachekit: a RedisTier on a Redis Cluster client is used from a "
                        "second event loop at once; calls there stay in-process"
                    )
                return None
            else:
                lane = self._sibling()
                self._lanes.append(lane)
            for other in idle:
                if other is not lane and other._unsent:
                    lane._unsent.update(other._unsent)
                    other._unsent.clear()
            lane._bind(loop)
            return lane

    def _client_is_one_node(self) -> bool:
        """A client of one Redis (a multi-key script works); False for a Cluster client."""
        return getattr(self._client, "connection_pool", None) is not None

    def _idle(self) -> bool:
        """No loop runs this lane now: its last one ended (or none ever bound it)."""
        return self._loop is None or self._loop.is_closed()

    def _sibling(self) -> RedisTier:
        """A lane for another loop: the same worker, caches, secrets and options, over a
        client of its own (a connection belongs to the loop that opened it)."""
        pool = self._client.connection_pool
        lane = copy.copy(self)
        lane._home = self
        lane._lanes = []
        lane._mark = f"{self._worker}.{next(self._lane_ids)}"
        lane._wake_channel = self._wake_prefix + lane._mark
        lane._client = Redis(
            connection_pool=ConnectionPool(
                connection_class=pool.connection_class,
                max_connections=pool.max_connections,
                **pool.connection_kwargs,
            )
        )
        lane._owns_client = True
        lane._scripts = {
            name: lane._client.register_script(script.script)
            for name, script in self._scripts.items()
        }
        lane._loop = None
        lane._closed = False
        lane._unsent = {}
        lane._listener = None
        lane._sub_client = None
        lane._listening = False
        lane._read_unheard = False
        lane._started = None
        lane._outage = False
        lane._logged_offline = False
        return lane

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the tier to `loop`: its first, or the next one after the last ended. What
        belonged to the last loop starts afresh; queued invalidations are sent at once."""
        if self._loop is not None:  # closed without cancelling our tasks (not asyncio.run)
            pool = getattr(self._client, "connection_pool", None)
            if pool is not None:
                pool.reset()  # its connections belong to the closed loop: never reused
            self._read_unheard = True  # invalidations went unheard since it closed
        self._loop = loop
        self._ending = False
        self._free = Slots(self._slots)
        self._deadlines = Deadlines(loop, self._op_timeout)
        self._started = asyncio.Event()
        self._listening = False
        self._waiting = {}
        self._pending = {}
        self._background = set()
        self._renewals = set()
        self._resender = None
        self._clock_reading = None
        self._clock_read_at = -math.inf
        self._failures = 0
        self._open_until = 0.0
        if self._unsent:  # issued on the last loop, or with none running
            self._resender = self._spawn(self._resend(first_delay=0.0), self._renewals)
        pool = getattr(self._client, "connection_pool", None)
        if pool is None:  # a cluster client: it subscribes through its own nodes
            self._sub_client = self._client
        else:  # a pool of its own, so the subscription never takes one of the commands'
            kwargs = dict(pool.connection_kwargs)
            kwargs["retry"] = Retry(NoBackoff(), 0)
            self._sub_client = Redis(
                connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs)
            )
        self._listener = loop.create_task(self._listen())

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run one command within op_timeout, the wait for a connection slot included;
        _Unavailable if it fails or the circuit is open (in either on_error mode)."""
        loop = self._loop
        assert loop is not None and self._free is not None and self._deadlines is not None
        if self._closed or loop.time() < self._open_until:
            raise _Unavailable(None)
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        running = self._deadlines.start(task)
        slots = self._free
        try:
            try:
                if not slots.try_take():
                    await slots.take()
                try:
                    if loop.time() < self._open_until:  # it opened while we queued
                        raise _Unavailable(None)
                    result = await command()
                finally:
                    slots.give_back()
            except asyncio.CancelledError:
                if running.expired:  # (as asyncio.timeout does)
                    running.expired = False
                    if task.uncancel() <= cancelling:  # nobody else cancelled it: our deadline
                        raise TimeoutError from None
                raise
            finally:
                running.task = None
                if running.expired:  # its cancellation was swallowed on the way: take it back
                    task.uncancel()
        except _ERRORS as exc:
            if not _per_key(exc):
                self._failed(exc, loop)
                raise _Unavailable(exc) from exc
            self._answered()  # Redis is up: this one key is wrong, not Redis
            raise _Unavailable(exc) from exc
        self._answered()
        return result

    def _answered(self) -> None:
        """Redis answered: the failures in a row, and the outage if any, are over."""
        if self._failures:
            self._failures = 0
            if self._outage:
                self._outage = False
                log.warning("cachekit: Redis answers again; caches share through it again")

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Callable[[], Awaitable[Any]]:
        return partial(self._scripts[name], keys=keys, args=args)

    def _new_lock(self) -> str:
        return f"lock:{self._worker}:{next(self._locks)}"

    async def _acquire(self, key: str, lock: str) -> bytes | None:
        """The entry at `key`, or the lock another worker holds on it, or None: `lock` is
        now ours, for one lease. One native command: a hit costs what a GET costs."""
        if self._native_acquire:
            try:
                reply = await self._client.execute_command(
                    "SET", key.encode(), lock.encode(), *self._acquire_tail, get=True
                )
                return _bytes_or_none(reply, "SET NX GET")
            except ResponseError as exc:
                if "syntax" not in str(exc).lower():
                    raise
                self._native_acquire = False  # Redis < 7.0: NX and GET do not combine there
        reply = await self._scripts["acquire"](keys=[key], args=[lock, self._probation_ms])
        return _bytes_or_none(reply, "the acquire script")

    def _redis_now(self) -> float:
        """An upper bound of Redis's clock now, in unix ms. A reading that answered T was
        taken no earlier than it was sent (loop time t0), so Redis's clock reads at most T
        plus the time elapsed since t0, plus _DRIFT of it. Needs `_clock_ready()` first."""
        assert self._loop is not None
        elapsed = self._loop.time() - self._clock_read_at
        return self._clock_ms + elapsed * 1000 * (1 + _DRIFT)

    async def _clock_ready(self) -> None:
        """Start a new reading of Redis's clock; wait for it only if there is no reading yet
        (then _Unavailable if it fails; a later call starts another)."""
        task = self._clock_reading
        if task is None or task.done():
            task = self._clock_reading = self._spawn(self._read_clock())
        if self._clock_read_at == -math.inf:
            await asyncio.shield(task)

    async def _read_clock(self) -> None:
        assert self._loop is not None
        sent = self._loop.time()
        self._clock_ms = await self._call(self._time)
        self._clock_read_at = sent

    async def _time(self) -> float:
        """Redis's clock in unix ms (TIME)."""
        reply = await self._client.execute_command("TIME")
        try:
            seconds, micros = reply
            now = int(seconds) * 1000 + int(micros) / 1000
        except (TypeError, ValueError) as exc:
            raise _BadReply(f"TIME answered {reply!r:.60}") from exc
        if now < _PLAUSIBLE_MS:  # every expiry computed from it would lie in the past
            raise _BadReply(f"TIME answered {reply!r:.60}, before 2020")
        return now

    def _failed(self, exc: BaseException, loop: asyncio.AbstractEventLoop) -> None:
        self._failures += 1
        if not self._outage:
            self._outage = True
            log.warning(
                "cachekit: Redis failed (%s: %s); caches answer in-process, and queue their "
                "invalidations, until it is back (logged once per outage)",
                type(exc).__name__,
                exc,
            )
        if self._failures >= _TRIP:
            self._open_until = loop.time() + self._cooldown

    def _spawn(
        self, coro: Coroutine[Any, Any, Any], into: set[asyncio.Task[Any]] | None = None
    ) -> asyncio.Task[Any]:
        """A task the tier tracks until it finishes (aclose cancels what is left)."""
        assert self._loop is not None
        tasks = self._background if into is None else into
        task = self._loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(partial(_finished, tasks))
        return task

    # ------------------------------------------------------------------ broadcasts

    def _schedule(
        self,
        binding: _Binding,
        tag: str,
        make: _Command,
        resend: _Command,
    ) -> None:
        """Run an invalidation, set or clear on the tier's loop, from any thread or none;
        `resend` sends it again if it cannot reach Redis now."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._closed:
            binding.errors += 1
            log.warning("cachekit: %s not sent to Redis: the tier is closed", tag)
            return
        lane = self._here() if running is not None else None
        loop = self._loop
        if lane is not None:  # on the lane of the caller's loop
            lane._issue(binding, tag, make, resend)
        elif loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._issue, binding, tag, make, resend)
        else:  # no loop runs the tier (its own ended): the next one to use it sends this
            binding.errors += 1
            if not self._logged_offline:
                self._logged_offline = True
                log.warning(
                    "cachekit: %s queued: no event loop runs the RedisTier now; sent by the "
                    "next one that uses it (logged once)",
                    tag,
                )
            self._defer(tag, resend)

    def _issue(
        self,
        binding: _Binding,
        tag: str,
        make: _Command,
        resend: _Command,
    ) -> None:
        """Send a command now, or, during an outage (the circuit has opened and no command
        has succeeded since), queue it for the resender, which finds out when Redis answers
        again: no task and no log line each, so an outage cannot flood the process."""
        if self._closed or self._failures < _TRIP:
            self._start_pending(tag, make, resend)
            return
        binding.errors += 1
        # An older command for the tag still in flight must not queue itself over this one.
        self._pending.pop(tag, None)
        self._defer(tag, resend)

    def _start_pending(
        self,
        tag: str,
        make: _Command,
        resend: _Command,
    ) -> None:
        self._unsent.pop(tag, None)  # this newer command replaces one that missed Redis
        task = self._spawn(self._in_order(tag, self._predecessors(tag), make, resend))
        self._pending[tag] = task
        task.add_done_callback(partial(self._unpend, tag))

    def _predecessors(self, tag: str) -> list[asyncio.Task[Any]]:
        """The commands still in progress, on any loop's lane, that Redis must apply before
        a new one for `tag`: for a key (`base`), the last one for that key and the last
        clear of its cache; for a clear (a cache prefix), the last one for each of the
        cache's keys."""
        found: list[asyncio.Task[Any]] = []
        for lane in self._everyone():
            pending = lane._pending
            if not pending:
                continue
            if "{" in tag:
                prefix = tag.partition("{")[0]
                found += [t for t in (pending.get(tag), pending.get(prefix)) if t is not None]
            else:
                found += [task for other, task in list(pending.items()) if other.startswith(tag)]
        return found

    async def _in_order(
        self,
        tag: str,
        predecessors: list[asyncio.Task[Any]],
        make: _Command,
        resend: _Command,
    ) -> None:
        """Send `make()` once its predecessors are done: each command runs on whichever
        pool connection is free, so Redis would apply concurrent ones in any order. If the
        loop ends first (cancelled, not by aclose), the next loop sends it (`_bind`)."""
        try:
            for task in predecessors:
                await _after(task, self._op_timeout * 4)  # its outcome is its own: the order
            await make()
        except asyncio.CancelledError:
            if not self._closed and self._pending.get(tag) is asyncio.current_task():
                self._unsent[tag] = resend
            raise

    def _resend_later(self, tag: str, resend: _Command) -> None:
        """Called by the command's own task: unless a newer command for the tag was sent
        since (its task is then the tag's pending one), send this one again later."""
        if self._closed or self._pending.get(tag) is not asyncio.current_task():
            return
        self._defer(tag, resend)

    def _defer(self, tag: str, resend: _Command) -> None:
        """Queue `resend` for when Redis answers: one per tag, bounded (see `_unsent`)."""
        unsent = self._unsent
        if "{" in tag and tag.partition("{")[0] in unsent:
            return  # its cache's clear, waiting too, covers it
        unsent.pop(tag, None)  # re-inserted last: the resend keeps the order of issue
        if len(unsent) >= _UNSENT_MAX:
            self._collapse()
            if "{" in tag and tag.partition("{")[0] in unsent:
                return
        unsent[tag] = resend
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # sent when a loop binds the tier (`_bind`)
        if self._resender is None or self._resender.done():
            self._resender = self._spawn(self._resend(), self._renewals)

    def _collapse(self) -> None:
        """Too many keys wait for Redis: each cache's give way to one clear of the cache."""
        prefixes: set[str] = set()
        for tag in list(self._unsent):
            if "{" in tag:
                prefixes.add(tag.partition("{")[0])
                del self._unsent[tag]
        for prefix in prefixes:
            binding = next(iter(self._bindings.get(prefix, ())), None)
            if binding is not None:  # (none left: no cache of that name to clear for)
                self._unsent.pop(prefix, None)
                self._unsent[prefix] = partial(binding._send_clear, again=True)

    async def _resend(self, first_delay: float | None = None) -> None:
        """Send again, with backoff, the invalidations and clears that missed Redis, until
        none is left (each one that fails again puts itself back). In batches, each awaited
        before the next, so the loop is never held for long and the pool never flooded."""
        assert self._loop is not None
        delay = max(self._cooldown, _POLL_MIN)
        pause = delay if first_delay is None else first_delay
        while self._unsent and not self._closed:
            await asyncio.sleep(pause)
            pause = delay
            delay = min(delay * 2, _RESUBSCRIBE_MAX)
            while self._unsent and not self._closed and self._loop.time() >= self._open_until:
                batch = list(itertools.islice(self._unsent, _RESEND_BATCH))
                for tag in batch:
                    resend = self._unsent[tag]
                    self._start_pending(tag, resend, resend)  # (takes it out of _unsent)
                await asyncio.wait([self._pending[tag] for tag in batch if tag in self._pending])
                if any(tag in self._unsent for tag in batch):
                    break  # Redis failed again: back off

    def _unpend(self, tag: str, task: asyncio.Task[Any]) -> None:
        if self._pending.get(tag) is task:
            del self._pending[tag]

    def _unsettled(self) -> bool:
        """Some lane has commands in progress."""
        return any(lane._pending for lane in self._everyone())

    async def _settled(self, base: str, prefix: str) -> None:
        """Wait for invalidations and clears of this key sent before the read, on any loop."""
        for lane in self._everyone():
            for tag in (prefix, base):
                task = lane._pending.get(tag)
                if task is not None:
                    await _after(task, self._op_timeout * 4)

    async def _listen(self) -> None:
        """The tier's one subscription: wakes waiters, applies others' invalidations."""
        assert self._started is not None
        delay = _POLL_MIN
        broken = False
        listener = asyncio.current_task()
        assert listener is not None
        while not self._closed:
            pubsub = None
            try:
                async with asyncio.timeout(self._op_timeout * 4):
                    if self._sub_client is self._client and hasattr(self._client, "initialize"):
                        await self._client.initialize()  # a cluster client learns its slots
                    pubsub = self._sub_client.pubsub()
                    await pubsub.subscribe(self._channel, self._wake_channel)
                pinged = False
                idle = self._op_timeout * _IDLE
                while not self._closed:
                    message = await pubsub.get_message(timeout=idle)
                    if listener.cancelling():  # a cancellation redis-py lost: honour it here
                        raise asyncio.CancelledError
                    if message is None:
                        if pinged:
                            raise TimeoutError("the subscription stopped answering")
                        pinged = True
                        async with asyncio.timeout(self._op_timeout):
                            await pubsub.ping()
                        continue
                    pinged = False
                    if message["type"] == "subscribe":
                        if message["data"] != 2:  # listening once both channels are
                            continue
                        self._listening = True
                        self._started.set()
                        delay = _POLL_MIN
                        if broken or self._read_unheard:  # invalidations may have been missed
                            broken = self._read_unheard = False
                            self._resync()
                    elif message["type"] == "message":
                        self._dispatch(message["data"])
            except Exception as exc:  # the listener must outlive anything a message does
                if not isinstance(exc, _ERRORS):
                    log.error("cachekit: the RedisTier listener failed", exc_info=exc)
                broken = True
                self._listening = False
                self._started.set()  # the first callers stop waiting for it
                self._wake_all()  # waiters switch to polling
            except asyncio.CancelledError:
                if not self._closed:  # not aclose(): the loop is ending (asyncio.run)
                    await self._let_go(pubsub)
                raise
            except GeneratorExit:  # collected unfinished (its loop was closed under it)
                pubsub = None  # nothing can be awaited now: its connection goes with it
                raise  # (a closed loop leaves the lane idle: the next loop rebinds it)
            finally:
                try:
                    if pubsub is not None:
                        await pubsub.aclose()
                except _ERRORS:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESUBSCRIBE_MAX)

    async def _let_go(self, pubsub: Any) -> None:
        """The tier's loop is ending: close what belongs to it, so that the next loop to
        use the tier binds it afresh (see `_bind`). Commands cancelled meanwhile queued
        themselves in `_unsent` (`_in_order`)."""
        self._ending = True  # no release is started from now on
        # Commands still on their way would outlive the loop, pending: each is cancelled
        # and waited for, those started meanwhile too (a release is dropped, and its lock
        # lapses; an invalidation queues itself in `_unsent`).
        while pending := [task for task in self._background if not task.done()]:
            for task in pending:
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=self._op_timeout)
            if stuck:  # (one that ignores its cancellation: leave it)
                break
        connections = [pubsub] if pubsub is not None else []
        for client in (self._sub_client, self._client):
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                connections.append(pool)
        for connection in connections:
            try:
                await (connection.aclose() if connection is pubsub else connection.disconnect())
            except _ERRORS:
                pass
        self._loop = None
        self._started = None
        self._read_unheard = True  # until the next loop listens, invalidations go unheard

    def _signed(self, message: str) -> str:
        """A broadcast as sent: with a secret, followed by its signature (by the first)."""
        if not self._secret:
            return message
        return f"{message} {_broadcast_mac(self._secret[0], message)}"

    def _dispatch(self, data: Any) -> None:
        if not isinstance(data, bytes):
            return  # not a message of ours
        message = data.decode("utf-8", "replace")
        if self._secret:  # only what a holder of a secret signed: nobody else drops our L1
            message, _, mac = message.rpartition(" ")
            valid = False
            for secret in self._secret:
                valid |= hmac.compare_digest(mac, _broadcast_mac(secret, message))
            if not valid:
                self._notices.warn(
                    "unsigned broadcast",
                    "cachekit: ignored a broadcast on %s not signed with this tier's secret",
                    self._channel,
                )
                return
        parts = message.split(" ")
        if parts[0] == "d" and len(parts) == 2:
            self._wake(parts[1])
        elif parts[0] == "i" and len(parts) == 3:
            base = parts[2]
            self._wake(base)  # a waiter for a load that can no longer store asks again
            if parts[1] != self._worker:
                prefix, _, digest = base.partition("{")
                for binding in list(self._bindings.get(prefix, ())):
                    binding.dropped(digest[:-1])
        elif parts[0] == "c" and len(parts) == 3 and parts[1] != self._worker:
            for binding in list(self._bindings.get(parts[2], ())):
                binding.cache.clear_here()

    def _resync(self) -> None:
        for bindings in list(self._bindings.values()):
            for binding in list(bindings):
                binding.cache.clear_here()
        self._wake_all()

    def _expect(self, base: str) -> asyncio.Future[None]:
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiting.setdefault(base, set()).add(future)
        return future

    def _unexpect(self, base: str, future: asyncio.Future[None]) -> None:
        futures = self._waiting.get(base)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiting[base]

    def _wake(self, base: str) -> None:
        for future in self._waiting.pop(base, ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for base in list(self._waiting):
            self._wake(base)

    def _rejected(self, key: str, error: BaseException) -> None:
        self._notices.warn(
            "rejected", "cachekit: rejected the payload at %s (%s); treated as a miss", key, error
        )


async def _after(task: asyncio.Task[Any], bound: float) -> None:
    """Wait until `task` is done, whatever its outcome, on whichever loop it runs; at most
    `bound` seconds for a task of another loop (that loop may be stopped)."""
    if task.done():
        return
    loop = task.get_loop()
    if loop is asyncio.get_running_loop():
        await asyncio.wait([task])
        return
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def finished(_: Any) -> None:
        if not done.done():
            done.set_result(None)

    try:
        loop.call_soon_threadsafe(task.add_done_callback, finished)
    except RuntimeError:  # its loop is closed: the task will never finish
        return
    try:
        async with asyncio.timeout(bound):
            await asyncio.wrap_future(done)
    except TimeoutError:
        pass


def _finished(tasks: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    tasks.discard(task)
    if not task.cancelled() and not isinstance(task.exception(), (type(None), _Unavailable)):
        log.error("cachekit: a RedisTier task failed", exc_info=task.exception())


def _broadcast_mac(secret: bytes, message: str) -> str:
    """A broadcast's signature: HMAC-SHA256 of it, 128 bits in hex."""
    return hmac.new(secret, b"broadcast\0" + message.encode(), hashlib.sha256).hexdigest()[:32]


def _bytes_or_none(reply: Any, command: str) -> bytes | None:
    if reply is None or isinstance(reply, bytes):
        return reply
    raise _BadReply(f"{command} answered {type(reply).__name__} {reply!r:.60}")


def _per_key(error: BaseException) -> bool:
    """An error about one key (another client stored something else there), not about
    Redis: it fails that call only, and never opens the circuit."""
    return isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE")


def _circuit_open() -> RedisConnectionError:
    """What a caller gets under on_error="raise" while the circuit is open: at once."""
    return RedisConnectionError("Redis is unavailable: the circuit is open after repeated failures")


async def _compute(compute: Callable[[], Awaitable[Any]]) -> Any:
    awaitable = compute()
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"compute() must return an awaitable, got {awaitable!r}")
    return await awaitable


@final
class _Binding:
    """One AsyncCache's view of the tier: what its flights run, and its counters.

    Counters are written on the tier's loop only.
    """

    def __init__(self, tier: RedisTier, name: str, cache: SharedCache) -> None:
        self.tier = tier
        self.name = name
        self.cache = cache
        self.prefix = f"ck:{tier.namespace}:{name}:"
        # digest -> the L1 key it names, written by every bind(), so that another
        # worker's invalidation finds the key while it is in flight or in L1. May keep
        # keys that have gone; pruned to those still present when it doubles.
        self._keys: dict[str, Hashable] = {}
        # digest -> SHA-1 (hex) of the payload this process's L1 entry came from, so that a
        # refresh tells an entry another worker has refreshed since from the one it read.
        # (Kept only for a cache that refreshes: nothing else reads it.)
        self._seen: dict[str, str] = {}
        self._tracks = cache.refreshes()
        self._prune_at = 1024
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.waits = 0
        self.takeovers = 0

    def counters(self) -> dict[str, int]:
        return {
            "shared_hits": self.hits,
            "shared_misses": self.misses,
            "shared_errors": self.errors,
            "remote_waits": self.waits,
            "lock_takeovers": self.takeovers,
        }

    def _dump(self, value: Any) -> bytes | None:
        """`value` serialized for the shared store, or None (counted, warned once a period)
        if the serializer refuses it: such a value is kept in-process only."""
        tier = self.tier
        try:
            dumped = tier._serializer.dumps(value)
            return dumped.encode() if isinstance(dumped, str) else dumped
        except Exception as exc:  # the serializer's, or a str it made that cannot encode
            self.errors += 1
            tier._notices.warn(
                "unserializable",
                "cachekit: a %s value could not be serialized (%s); kept in-process",
                type(value).__name__,
                exc,
            )
            return None

    def bind(
        self, key: Hashable, compute: Callable[[], Awaitable[Any]], ttl: Any = None
    ) -> Callable[[], Awaitable[Any]]:
        """`compute` behind the shared store; `ttl` is the call's own (None: the cache's)."""
        digest = key_digest(self.name, key)  # TypeError for a key with no stable encoding
        keys = self._keys
        if len(keys) >= self._prune_at:
            self._prune()
        keys[digest] = key
        return partial(self._load, f"{self.prefix}{{{digest}}}", compute, ttl)

    def _saw(self, base: str, payload: bytes) -> None:
        """This process's L1 entry of `base` now comes from `payload` (see `_seen`)."""
        if self._tracks:
            self._seen[_digest(base)] = _sha1(payload)

    def _prune(self) -> None:
        holds = self.cache.holds_key
        for digest, key in list(self._keys.items()):
            if not holds(key):
                self._keys.pop(digest, None)
                self._seen.pop(digest, None)
        self._prune_at = max(1024, 2 * len(self._keys))

    def dropped(self, digest: str) -> None:
        """Another worker invalidated the key with this digest."""
        key = self._keys.get(digest, _ABSENT)  # kept: the prune decides when it has gone
        if key is not _ABSENT:
            self.cache.invalidate_here(key)

    def stored(self, key: Hashable, value: Any, ttl: float | None) -> None:
        digest = key_digest(self.name, key)  # TypeError: a key that cannot be shared
        self._keys[digest] = key  # so that another worker's invalidation finds it here
        base = f"{self.prefix}{{{digest}}}"
        tier = self.tier
        body: bytes | None = None
        if ttl is None or ttl * 1000 >= 1:
            body = self._dump(value)
        resend = partial(self._send_invalidate, base, again=True)
        if body is None or len(body) > tier._max_value_bytes:
            # Not shareable: other workers must at least stop serving the old value.
            tier._schedule(self, base, partial(self._send_invalidate, base), resend)
        else:  # resent as an invalidation: other workers must stop serving the old value
            tier._schedule(self, base, partial(self._send_write, base, body, ttl), resend)

    def invalidated(self, key: Hashable) -> None:
        try:
            base = f"{self.prefix}{{{key_digest(self.name, key)}}}"
        except TypeError:  # never shared, so nothing to delete
            return
        resend = partial(self._send_invalidate, base, again=True)
        self.tier._schedule(self, base, partial(self._send_invalidate, base), resend)

    async def _send_write(self, base: str, body: bytes, ttl: float | None) -> None:
        tier = self.tier._lane()
        key = f"{base}:v"
        try:
            await tier._clock_ready()
            at = 0 if ttl is None else math.ceil(tier._redis_now() + ttl * 1000)
            payload = seal(tier._secret, key.encode(), VALUE, at, body)
            message = tier._signed(f"i {tier._worker} {base}")
            args = [payload, self._stored_until(at, VALUE), tier._channel, message]  # unfenced
            await tier._call(tier._script("write", [key], args))
            self._saw(base, payload)
        except _Unavailable:  # other workers must at least stop serving the old value
            self._missed(base, partial(self._send_invalidate, base, again=True), False)

    def cleared(self) -> None:
        resend = partial(self._send_clear, again=True)
        self.tier._schedule(self, self.prefix, self._send_clear, resend)

    async def _send_invalidate(self, base: str, *, again: bool = False) -> None:
        tier = self.tier._lane()
        message = tier._signed(f"i {tier._worker} {base}")
        try:
            await tier._call(tier._script("invalidate", [f"{base}:v"], [tier._channel, message]))
        except _Unavailable:
            self._missed(base, partial(self._send_invalidate, base, again=True), again)

    def _missed(self, tag: str, resend: _Command, again: bool) -> None:
        """An invalidation, clear or set() did not reach Redis: until it does, the entry
        there (and in other workers' L1) is stale. Counted the first time (the outage is
        logged once, by the tier); sent again when Redis answers."""
        if not again:
            self.errors += 1
        self.tier._lane()._resend_later(tag, resend)

    async def _send_clear(self, *, again: bool = False) -> None:
        tier = self.tier._lane()
        client = tier._client
        # The prefix and the hash tag's brace: cache "a" must not match cache "a:b"'s keys.
        match = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "{*"
        keys = client.scan_iter(match=match, count=1000)
        try:
            batch: list[bytes] = []
            while True:
                try:
                    batch.append(await tier._call(partial(anext, keys)))
                except StopAsyncIteration:
                    break
                if len(batch) >= 500:
                    await tier._call(partial(client.unlink, *batch))
                    batch = []
            if batch:
                await tier._call(partial(client.unlink, *batch))
            message = tier._signed(f"c {tier._worker} {self.prefix}")
            await tier._call(partial(client.publish, tier._channel, message))
        except _Unavailable:
            self._missed(self.prefix, partial(self._send_clear, again=True), again)
        finally:
            try:
                await keys.aclose()
            except _ERRORS:
                pass

    # ------------------------------------------------------------------ a flight's load

    async def _load(
        self, base: str, compute: Callable[[], Awaitable[Any]], per_call: Any = None
    ) -> Any:
        """What the flight runs instead of `compute`: the entry from Redis, or another
        worker's load of it, or `compute()` under the fleet-wide lock."""
        tier = self.tier._here()
        if tier is None:
            return await _compute(compute)
        try:
            if not await self._ready(tier, base):
                return await _compute(compute)  # Redis may still hold what it would delete
        except _Unavailable as exc:
            return await self._unshared(exc, compute)
        return await self._load_with(tier, base, compute, per_call)

    async def look_up(
        self, bound: Callable[[], Awaitable[Any]]
    ) -> Landed | SharedFailure | Callable[[], Awaitable[Any]]:
        """`_load` (`bound`, from bind()) up to its first acquire, run by the caller that
        leads the flight, in its own task: an entry found is its answer, at the cost of a
        bare read; anything else comes back as the rest of the load, for the flight's task.
        Cancelled while the acquire may be on its way, it releases the lock that acquire
        may have taken (fenced by its value, and waking whoever waits), so the load that
        starts over does not wait for a holder that is gone."""
        assert isinstance(bound, partial) and bound.func == self._load
        base, compute, per_call = bound.args
        tier = self.tier._here()
        if tier is None:
            return partial(_compute, compute)
        try:
            if not await self._ready(tier, base):
                return partial(_compute, compute)  # Redis may still hold what it would delete
        except _Unavailable as exc:
            return partial(self._unshared, exc, compute)
        key = f"{base}:v"
        lock = tier._new_lock()
        try:
            found = await tier._call(partial(tier._acquire, key, lock))
        except _Unavailable as exc:
            if exc.cause is not None and not isinstance(exc.cause, ResponseError):
                self._release(base, lock)  # sent, maybe: it may still take the lock
            return partial(self._unshared, exc, compute)
        except BaseException:
            self._release(base, lock)
            raise
        if found is None:  # the lock is ours
            self.misses += 1
            return partial(self._lead, base, lock, compute, per_call)
        if found.startswith(_LOCK):  # another worker loads it: wait for it in the task
            return partial(self._load_with, tier, base, compute, per_call, found)
        outcome = self._open(key, found)
        if type(outcome) is SharedFailure:
            self.hits += 1
            return outcome
        if outcome is not None and (
            outcome.ttl is None or -outcome.ttl < self.cache.stale_windows()[0]
        ):
            self.hits += 1
            self._saw(base, found)
            return outcome
        # Rejected, expired, or past its stale window: as `_load_with` goes on from there.
        return partial(self._load_with, tier, base, compute, per_call, found, outcome)

    async def _ready(self, tier: RedisTier, base: str) -> bool:
        """Before a read of `base` on lane `tier`: the subscription started (once), the
        commands for that key sent before it applied, Redis's clock known (_Unavailable if
        it cannot be read). False: an invalidation of it is still queued, do not read."""
        assert tier._started is not None
        if not tier._started.is_set():  # once per process: let the subscription start
            try:
                async with asyncio.timeout(tier._op_timeout):
                    await tier._started.wait()
            except TimeoutError:
                pass
        lanes = tier._everyone() if tier._home._lanes else (tier,)  # (one loop: most)
        for lane in lanes:
            unsent = lane._unsent
            if unsent and (base in unsent or self.prefix in unsent):
                return False
        if not tier._listening:
            tier._read_unheard = True
        if any(lane._pending for lane in lanes):  # (RedisTier._unsettled)
            await tier._settled(base, self.prefix)
        assert tier._loop is not None
        if tier._loop.time() - tier._clock_read_at > _RECALIBRATE:
            await tier._clock_ready()
        return True

    async def _load_with(
        self,
        tier: RedisTier,
        base: str,
        compute: Callable[[], Awaitable[Any]],
        per_call: Any,
        first: bytes | None = None,
        opened: Landed | SharedFailure | _Unopened | None = _UNOPENED,
    ) -> Any:
        """The load of `base` on lane `tier` (`first`: what a bulk read or `look_up` just
        found there, so the first acquire is not sent again; `opened`: what `_open` made of
        it, if it was asked already, so that a rejected payload is counted once)."""
        loop = asyncio.get_running_loop()
        key = f"{base}:v"
        lock = tier._new_lock()
        # Past wait_timeout a waiter still gives a dead holder's lease the time to lapse (so
        # exactly one worker takes over), then loads here without sharing.
        deadline = loop.time() + tier._wait_timeout + tier._lease
        poll = _POLL_MIN
        waited = woken = discarded = False
        while True:
            waiter = tier._expect(base)
            try:
                try:
                    if first is not None:
                        found, first = first, None
                    else:
                        found = await tier._call(partial(tier._acquire, key, lock))
                except _Unavailable as exc:
                    if exc.cause is not None and not isinstance(exc.cause, ResponseError):
                        self._release(base, lock)  # sent, maybe: it may still take the lock
                    return await self._unshared(exc, compute)
                if found is None:  # the lock is ours
                    self.misses += 1
                    if waited and not woken:
                        self.takeovers += 1
                    return await self._lead(base, lock, compute, per_call)
                if not found.startswith(_LOCK):
                    if isinstance(opened, _Unopened):
                        outcome = self._open(key, found)
                    else:  # opened by look_up: counted and warned of there
                        outcome, opened = opened, _UNOPENED
                    if outcome is None:  # rejected or expired: delete it once, ask again
                        if discarded:
                            return await _compute(compute)
                        discarded = True
                        try:
                            await tier._call(tier._script("discard", [key], [found]))
                        except _Unavailable as exc:
                            return await self._unshared(exc, compute)
                        continue
                    if isinstance(outcome, SharedFailure):
                        self.hits += 1
                        raise outcome
                    self._saw(base, found)
                    if outcome.ttl is not None and -outcome.ttl >= self.cache.stale_windows()[0]:
                        # Past its stale window, within stale_if_error's: not served as it
                        # is, but the fallback of a reload (under the refresh lock: the
                        # entry holds the key, so nobody can take the load lock).
                        return await self._refresh_with(tier, base, compute, per_call, outcome)
                    self.hits += 1
                    return outcome
                # Another worker is loading it: wait for its broadcast, or one probation
                # (by then a dead holder's lock has lapsed; a live one renews it).
                if not waited:
                    waited = True
                    self.waits += 1
                mark = tier._mark.encode()
                if tier._listening and mark not in found.split(b" ")[1:]:  # ask to be told
                    try:
                        args = [found, found + b" " + mark]
                        marked = await tier._call(tier._script("watch", [key], args))
                    except _Unavailable as exc:
                        return await self._unshared(exc, compute)
                    if marked != 1:
                        continue  # it changed meanwhile: ask again at once
                now = loop.time()
                if now >= deadline:  # waited long enough: load here, without sharing
                    return await _compute(compute)
                # (A live holder's lock outlasts that, but one a timed-out acquire took
                # lapses after it.)
                timeout = min(deadline - now, tier._probation + _MARGIN)
                if not tier._listening:
                    timeout = min(timeout, poll)
                    poll = min(poll * 2, _POLL_MAX)
                try:
                    async with asyncio.timeout(timeout):
                        await waiter
                    woken = True
                except TimeoutError:
                    woken = False
            finally:
                tier._unexpect(base, waiter)

    async def _unshared(self, exc: _Unavailable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """Redis failed before this load began: raise, or load in-process (degrade)."""
        self.errors += 1
        if self.tier._raise:
            raise SharedFailure(exc.cause or _circuit_open(), 0.0) from None
        return await _compute(compute)

    def _remaining(self, expires_at: int, negative: bool = False) -> float | None:
        """Seconds an entry fresh until `expires_at` (0: no expiry) is fresh in L1 (past
        it, with `negative`: minus how long it has been stale; else 0)."""
        if not expires_at:
            return None
        left = (expires_at - self.tier._lane()._redis_now()) / 1000
        return left if negative else max(0.0, left)

    def _stored_until(self, fresh_until: int, kind: bytes) -> int:
        """The PXAT of an entry fresh until `fresh_until` (unix ms; 0: never expires): a
        value outlives it by the cache's stale windows, served or kept as a fallback."""
        if not fresh_until or kind != VALUE:
            return fresh_until
        return fresh_until + math.ceil(max(self.cache.stale_windows()) * 1000)

    def _open(self, key: str, payload: bytes) -> Landed | SharedFailure | None:
        """The outcome a stored payload holds, or None if it must not be trusted or is
        past its own expiry (a copy written back after an invalidation, say)."""
        tier = self.tier._lane()
        try:
            if len(payload) > tier._max_value_bytes + SEAL_OVERHEAD:  # before any work on it
                raise BadPayload(f"{len(payload)} bytes, over max_value_bytes")
            kind, expires_at, body = unseal(tier._secret, key.encode(), payload)
            remaining = self._remaining(expires_at, negative=True)
            # A value is served stale, or kept as a fallback, for the cache's stale windows
            # past its (signed) fresh time; a failure is not.
            window = max(self.cache.stale_windows()) if kind == VALUE else 0.0
            if remaining is not None and remaining + window <= 0:
                return None  # expired by its own (signed) clock: a miss, not an error
            if kind == VALUE:
                return Landed(tier._serializer.loads(body), remaining)
            error = decode_error(body)
            if remaining is None:  # (a failure is stored with an expiry: not by cachekit)
                remaining = self.cache.failure_ttl(error) or 0.0
            return SharedFailure(error, remaining)
        except Exception as exc:
            self.errors += 1
            tier._rejected(key, exc)
            return None

    async def _lead(
        self,
        base: str,
        lock: str,
        compute: Callable[[], Awaitable[Any]],
        per_call: Any = None,
        renew: bool = True,
    ) -> Any:
        """Load holding the lock; renew its lease meanwhile; store the outcome fenced."""
        tier = self.tier._lane()
        cache = self.cache
        renewal = tier._spawn(self._renew(f"{base}:v", lock), tier._renewals) if renew else None
        try:
            try:
                value = await _compute(compute)
                ttl = cache.ttl_for(value, per_call)
            except Exception as error:
                negative = cache.failure_ttl(error)
                if negative is None:
                    self._release(base, lock)
                    raise
                landed = await self._put(base, lock, ERROR, encode_error(error), negative)
                raise SharedFailure(error, negative if landed is None else landed) from None
            except BaseException:  # cancelled: let another worker have the key at once
                self._release(base, lock)
                raise
            if ttl == 0:
                self._release(base, lock)
                return Landed(value, ttl)
            body = self._dump(value)
            if body is None:
                self._release(base, lock)
                return Landed(value, ttl)
            return Landed(value, await self._put(base, lock, VALUE, body, ttl))
        finally:
            if renewal is not None:
                renewal.cancel()

    async def _put(
        self, base: str, lock: str, kind: bytes, body: bytes, ttl: float | None
    ) -> float | None:
        """Store a payload in place of the lock if the lock is still ours. Returns the ttl
        the outcome lands with in L1: what is left of the Redis entry; 0 when fenced out
        (the key was invalidated, or the lease lost); `ttl` when it is not shared (too big,
        too short, or Redis failed)."""
        tier = self.tier._lane()
        key = f"{base}:v"
        at = 0
        if ttl is not None:
            if ttl * 1000 < 1:
                self._release(base, lock)
                return ttl
            at = math.ceil(tier._redis_now() + ttl * 1000)
        payload = seal(tier._secret, key.encode(), kind, at, body)
        if len(payload) > tier._max_value_bytes:
            self._release(base, lock)
            return ttl
        message = tier._signed(f"d {base}")
        until = self._stored_until(at, kind)
        args = [lock, payload, until, tier._wake_prefix, message, tier._probation_ms]
        try:
            stored = await tier._call(tier._script("put", [key], args))
            if stored:
                self._saw(base, payload)
        except _Unavailable as exc:
            self.errors += 1
            self._release(base, lock)  # when Redis answers again; the entry is not stored
            if tier._raise:
                raise SharedFailure(exc.cause or _circuit_open(), 0.0) from None
            return ttl
        except BaseException:
            self._release(base, lock)
            raise
        return self._remaining(at) if stored else 0.0

    def _release(self, base: str, lock: str, suffix: str = "v") -> None:
        """Give the lock up without a value (in the background): waiters ask again. Fenced
        by the lock's value, so it is safe at any time, even before the lock is taken.
        (`suffix` "r": the refresh lock.)"""
        tier = self.tier._lane()
        if tier._closed or tier._ending:  # (its lock lapses after its probation)
            return
        args = [lock, tier._wake_prefix, tier._signed(f"d {base}")]
        tier._spawn(self._send_release(tier._script("release", [f"{base}:{suffix}"], args)))

    # ------------------------------------------------------------------ a refresh

    def refreshing(self, bound: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """What a background refresh (stale_ttl, refresh_after) runs instead of what bind()
        or bind_many() returned: one refresh for the fleet, under a refresh lock of its own."""
        if isinstance(bound, partial) and bound.func == self._load:
            return partial(self._refresh, *bound.args)
        if isinstance(bound, partial) and bound.func == self._load_many:
            return partial(self._refresh_many, *bound.args)
        return bound

    # ------------------------------------------------------------------ a bulk load

    def bind_many(
        self, keys: list[Any], compute_many: Callable[[list[Any]], Awaitable[Any]]
    ) -> Callable[[list[Any]], Awaitable[Any]]:
        """`compute_many` behind the shared store, for get_many (see `_load_many`)."""
        for key in keys:
            self._keys[key_digest(self.name, key)] = key  # TypeError: no stable encoding
        return partial(self._load_many, compute_many)

    async def _load_many(
        self,
        compute_many: Callable[[list[Any]], Awaitable[Any]],
        keys: list[Any],
        refresh: bool = False,
    ) -> dict[Any, Any]:
        """What a bulk load runs instead of `compute_many(keys)`: one round trip (a
        pipeline of SET NX GET, one per key) reads every key's entry and locks those no
        worker is loading; one `compute_many` call loads exactly the keys locked here; the
        keys another worker is loading are joined, each as a single load would. Returns
        each key's Landed or SharedFailure (a key's failure is its own)."""
        tier = self.tier._here()
        if tier is None:
            found: dict[Any, Any] = await _compute(partial(compute_many, keys))
            return found
        bases = {key: f"{self.prefix}{{{key_digest(self.name, key)}}}" for key in keys}
        if refresh:  # each key's refresh is fleet-wide once (a refresh is per key anyway)
            refreshed = await asyncio.gather(
                *(self._one(tier, bases[k], self._single(compute_many, k), True) for k in keys),
                return_exceptions=True,
            )
            return self._outcomes(dict(zip(keys, refreshed, strict=True)))
        shared: list[Any] = []
        alone: list[Any] = []  # an invalidation of it still queued: loaded here
        try:
            for key in keys:
                (shared if await self._ready(tier, bases[key]) else alone).append(key)
        except _Unavailable as exc:
            return await self._unshared_many(exc, compute_many, keys)
        if not tier._native_acquire:  # (Redis 6.2) one key at a time
            each = await asyncio.gather(
                *(self._one(tier, bases[k], self._single(compute_many, k), False) for k in keys),
                return_exceptions=True,
            )
            return self._outcomes(dict(zip(keys, each, strict=True)))
        locks = {key: tier._new_lock() for key in shared}

        async def acquire_all() -> list[Any]:
            pipe = tier._client.pipeline(transaction=False)
            for key in shared:
                pipe.execute_command(
                    "SET", f"{bases[key]}:v", locks[key], "NX", "GET", "PX", tier._probation_ms
                )
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies

        try:
            replies = await tier._call(acquire_all) if shared else []
        except _Unavailable as exc:
            for key in shared:  # sent, maybe: they may still take their locks
                self._release(bases[key], locks[key])
            return await self._unshared_many(exc, compute_many, keys)
        mine: list[Any] = []
        outcomes: dict[Any, Any] = {}
        joins: dict[Any, Awaitable[Any]] = {}
        for key, reply in zip(shared, replies, strict=True):
            base = bases[key]
            if reply is None:
                mine.append(key)
                continue
            single = self._single(compute_many, key)
            if isinstance(reply, bytes) and not reply.startswith(_LOCK):
                outcome = self._open(f"{base}:v", reply)
                stale = self.cache.stale_windows()[0]
                if isinstance(outcome, SharedFailure) or (
                    isinstance(outcome, Landed) and (outcome.ttl is None or -outcome.ttl < stale)
                ):
                    self.hits += 1
                    self._saw(base, reply)
                    outcomes[key] = outcome
                    continue
            # Another worker's lock, or an entry to look at closer (rejected, expired, past
            # its stale window), or an error about this key: as a single load would.
            first = reply if isinstance(reply, bytes) and reply.startswith(_LOCK) else None
            joins[key] = self._load_with(tier, base, single, None, first)
        for key in alone:
            joins[key] = _compute(self._single(compute_many, key))
        loaded = self._lead_many(tier, compute_many, mine, bases, locks)
        results = await asyncio.gather(loaded, *joins.values(), return_exceptions=True)
        if isinstance(results[0], BaseException):
            raise results[0]
        outcomes.update(results[0])
        outcomes.update(self._outcomes(dict(zip(joins, results[1:], strict=True))))
        return outcomes

    async def _refresh_many(
        self, compute_many: Callable[[list[Any]], Awaitable[Any]], keys: list[Any]
    ) -> dict[Any, Any]:
        return await self._load_many(compute_many, keys, refresh=True)

    async def _lead_many(
        self,
        tier: RedisTier,
        compute_many: Callable[[list[Any]], Awaitable[Any]],
        mine: list[Any],
        bases: dict[Any, str],
        locks: dict[Any, str],
    ) -> dict[Any, Any]:
        """Load the keys whose locks are ours with one `compute_many` call, renewing every
        lock meanwhile, then store each outcome fenced (as `_lead` does for one)."""
        if not mine:
            return {}
        self.misses += len(mine)
        renewals = [
            tier._spawn(self._renew(f"{bases[k]}:v", locks[k]), tier._renewals) for k in mine
        ]
        error: Exception | None = None
        found: Any = {}
        try:
            try:
                found = await _compute(partial(compute_many, mine))
                if not isinstance(found, Mapping):
                    raise TypeError(f"compute_many() must return a Mapping, got {found!r:.200}")
            except Exception as exc:
                error = exc
            except BaseException:
                for key in mine:
                    self._release(bases[key], locks[key])
                raise
        finally:
            for renewal in renewals:
                renewal.cancel()

        def outcome_of(key: Any) -> Callable[[], Awaitable[Any]]:
            if error is not None:
                return partial(_raise, error)
            if key not in found:
                missing = KeyError(f"compute_many() returned no value for {key!r}")
                return partial(_raise, missing)
            return partial(_value, found[key])

        outcomes: dict[Any, Any] = {}
        rest = mine
        if error is None and len(mine) > 1 and tier._client_is_one_node():
            outcomes = await self._put_many(tier, found, mine, bases, locks)
            rest = [key for key in mine if key not in outcomes]
        stored = await asyncio.gather(
            *(self._lead(bases[k], locks[k], outcome_of(k), None, renew=False) for k in rest),
            return_exceptions=True,
        )
        outcomes.update(self._outcomes(dict(zip(rest, stored, strict=True))))
        return outcomes

    async def _put_many(
        self,
        tier: RedisTier,
        found: Mapping[Any, Any],
        mine: list[Any],
        bases: dict[Any, str],
        locks: dict[Any, str],
    ) -> dict[Any, Any]:
        """Store the plain values of a bulk load in one script (each fenced as `_put`
        does); the keys it leaves out (missing, not kept, not shareable) go one by one."""
        cache = self.cache
        keys: list[Any] = []
        values: dict[Any, tuple[Any, int]] = {}
        args: list[Any] = [tier._wake_prefix, tier._probation_ms]
        for key in mine:
            if key not in found:
                continue
            value = found[key]
            try:
                ttl = cache.ttl_for(value)
                if ttl is not None and ttl * 1000 < 1:
                    continue
                body = tier._serializer.dumps(value)
            except Exception:
                continue  # (the one-by-one store reports it)
            body = body.encode() if isinstance(body, str) else body
            redis_key = f"{bases[key]}:v"
            at = 0 if ttl is None else math.ceil(tier._redis_now() + ttl * 1000)
            payload = seal(tier._secret, redis_key.encode(), VALUE, at, body)
            if len(payload) > tier._max_value_bytes:
                continue
            keys.append(key)
            values[key] = (value, at)
            message = tier._signed(f"d {bases[key]}")
            args += [locks[key], payload, self._stored_until(at, VALUE), message]
        if not keys:
            return {}
        redis_keys = [f"{bases[key]}:v" for key in keys]
        try:
            replies = await tier._call(tier._script("put_many", redis_keys, args))
            if not isinstance(replies, list) or len(replies) != len(keys):
                raise _Unavailable(_BadReply(f"the bulk store answered {replies!r:.60}"))
        except _Unavailable as exc:
            self.errors += 1
            for key in keys:
                self._release(bases[key], locks[key])
            if tier._raise:
                failure = SharedFailure(exc.cause or _circuit_open(), 0.0)
                return dict.fromkeys(keys, failure)
            return {key: Landed(values[key][0], cache.ttl_for(values[key][0])) for key in keys}
        outcomes: dict[Any, Any] = {}
        for key, reply, arg in zip(keys, replies, args[3::4], strict=True):
            value, at = values[key]
            if reply == 1:
                self._saw(bases[key], arg)
                outcomes[key] = Landed(value, self._remaining(at))
            else:
                outcomes[key] = Landed(value, 0.0)  # fenced out
        return outcomes

    async def _one(
        self, tier: RedisTier, base: str, compute: Callable[[], Awaitable[Any]], refresh: bool
    ) -> Any:
        if refresh:
            return await self._refresh_with(tier, base, compute, None)
        return await self._load_with(tier, base, compute, None)

    def _single(
        self, compute_many: Callable[[list[Any]], Awaitable[Any]], key: Any
    ) -> Callable[[], Awaitable[Any]]:
        """A computation of one key through the bulk loader."""

        async def one() -> Any:
            found = await _compute(partial(compute_many, [key]))
            if not isinstance(found, Mapping):
                raise TypeError(f"compute_many() must return a Mapping, got {found!r:.200}")
            if key not in found:
                raise KeyError(f"compute_many() returned no value for {key!r}")
            return found[key]

        return one

    def _outcomes(self, results: dict[Any, Any]) -> dict[Any, Any]:
        """Each key's Landed or SharedFailure, from what its load returned or raised: a
        value computed without sharing lands with the cache's ttl, an error with its
        negative-caching rule (as the cache itself would)."""
        outcomes: dict[Any, Any] = {}
        for key, result in results.items():
            if isinstance(result, (Landed, SharedFailure)):
                outcomes[key] = result
            elif isinstance(result, Exception):
                outcomes[key] = SharedFailure(result, self.cache.failure_ttl(result) or 0.0)
            elif isinstance(result, BaseException):
                raise result
            else:
                outcomes[key] = Landed(result, self.cache.ttl_for(result))
        return outcomes

    async def _unshared_many(
        self,
        exc: _Unavailable,
        compute_many: Callable[[list[Any]], Awaitable[Any]],
        keys: list[Any],
    ) -> dict[Any, Any]:
        """Redis failed before this bulk load began: each key fails with the Redis error
        (raise mode, never cached), or the load runs in-process (degrade)."""
        self.errors += 1
        if self.tier._raise:
            failure = SharedFailure(exc.cause or _circuit_open(), 0.0)
            return dict.fromkeys(keys, failure)
        found: dict[Any, Any] = await _compute(partial(compute_many, keys))
        return found

    async def _refresh(
        self, base: str, compute: Callable[[], Awaitable[Any]], per_call: Any = None
    ) -> Any:
        tier = self.tier._here()
        if tier is None:
            return await _compute(compute)
        try:
            if not await self._ready(tier, base):
                return await _compute(compute)
        except _Unavailable as exc:
            return await self._unshared(exc, compute)
        return await self._refresh_with(tier, base, compute, per_call)

    async def _refresh_with(
        self,
        tier: RedisTier,
        base: str,
        compute: Callable[[], Awaitable[Any]],
        per_call: Any,
        fallback: Landed | None = None,
    ) -> Any:
        """Recompute an entry that Redis holds, fleet-wide once: the worker that takes the
        key's refresh lock (`base:r`, not the load lock, so readers are never held up)
        computes and stores it in place of the entry it saw (compare-and-set); workers
        that find the lock taken mark it and wait, serving what they have, and adopt the
        new entry when woken; a worker whose own refresh comes later finds an entry other
        than the one it holds (by SHA-1) and adopts it. A failed refresh leaves the entry
        in Redis as it was (a failure that is negatively cached keeps the refresh lock as
        long: nobody retries meanwhile).
        `fallback`: the stale entry a caller waits for (stale_if_error): what it gets if
        the recomputation fails, or another worker's takes longer than a lease."""
        key, refresh_key = f"{base}:v", f"{base}:r"
        digest = _digest(base)
        lock = tier._new_lock()
        mark = tier._mark.encode()
        waited = False
        for _ in range(_REFRESH_ROUNDS):
            waiter = tier._expect(base)
            try:
                args = [lock, tier._probation_ms, self._seen.get(digest, "")]
                try:
                    reply = await tier._call(tier._script("refresh", [key, refresh_key], args))
                    if not isinstance(reply, list) or not reply or reply[0] not in (0, 1, 2, 3):
                        raise _Unavailable(_BadReply(f"the refresh script answered {reply!r:.60}"))
                except _Unavailable as exc:
                    return await self._unshared(exc, compute)
                state = reply[0]
                found = reply[1] if len(reply) > 1 else None
                if state == 0 or not isinstance(found, bytes):  # no entry: a plain load
                    return await self._load_with(tier, base, compute, per_call)
                if state == 3:  # another worker refreshed (or set) it since: adopt that
                    outcome = self._open(key, found)
                    if not isinstance(outcome, Landed):
                        return await self._load_with(tier, base, compute, per_call)
                    self.hits += 1
                    self._saw(base, found)
                    return outcome
                if state == 1:
                    break
                # Another worker refreshes it: ask to be woken when it is done, and wait (a
                # dead refresher's lock lapses within a probation), then look again.
                if not waited:
                    waited = True
                    self.waits += 1
                holder = reply[2] if len(reply) > 2 else None
                if (
                    tier._listening
                    and isinstance(holder, bytes)
                    and mark not in holder.split(b" ")[1:]
                ):
                    try:
                        args = [holder, holder + b" " + mark]
                        marked = await tier._call(tier._script("watch", [refresh_key], args))
                    except _Unavailable as exc:
                        return await self._unshared(exc, compute)
                    if marked != 1:
                        continue  # it changed meanwhile: look again at once
                try:
                    async with asyncio.timeout(tier._probation + _MARGIN):
                        await waiter
                except TimeoutError:
                    if fallback is not None:
                        return fallback
                    outcome = self._open(key, found)  # still what we serve: keep it
                    return outcome if isinstance(outcome, Landed) else await _compute(compute)
            finally:
                tier._unexpect(base, waiter)
        else:  # woken, and woken again, without a new entry: serve what there is
            if fallback is not None:
                return fallback
            return await self._load_with(tier, base, compute, per_call)
        self.misses += 1
        renewal = tier._spawn(self._renew(refresh_key, lock), tier._renewals)
        cache = self.cache
        try:
            try:
                value = await _compute(compute)
                ttl = cache.ttl_for(value, per_call)
            except Exception as error:
                negative = cache.failure_ttl(error)
                if negative:  # nobody in the fleet asks the upstream again meanwhile
                    hold = tier._script("renew", [refresh_key], [lock, math.ceil(negative * 1000)])
                    tier._spawn(self._send_release(hold))
                else:
                    self._release(base, lock, "r")
                if fallback is not None:
                    return fallback
                raise
            except BaseException:
                self._release(base, lock, "r")
                raise
        finally:
            renewal.cancel()
        body: bytes | None = None
        if ttl is None or ttl > 0:
            body = self._dump(value)
        at = 0 if ttl is None else math.ceil(tier._redis_now() + ttl * 1000)
        payload = None if body is None else seal(tier._secret, key.encode(), VALUE, at, body)
        if payload is None or len(payload) > tier._max_value_bytes:
            self._release(base, lock, "r")
            return Landed(value, ttl)
        message = tier._signed(f"d {base}")
        until = self._stored_until(at, VALUE)
        args = [found, payload, until, tier._wake_prefix, message, lock, tier._probation_ms]
        try:
            stored = await tier._call(tier._script("refreshed", [key, refresh_key], args))
        except _Unavailable:
            self.errors += 1
            self._release(base, lock, "r")
            return Landed(value, ttl)
        if not stored:
            return Landed(value, 0.0)
        self._saw(base, payload)
        return Landed(value, self._remaining(at))

    async def _send_release(self, command: Callable[[], Awaitable[Any]]) -> None:
        """Send the release until Redis answers, for at most one lease: by then the lock
        has lapsed anyway."""
        tier = self.tier._lane()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + tier._lease
        delay = _POLL_MIN
        while not tier._closed:
            try:
                await tier._call(command)
                return
            except _Unavailable as exc:
                if isinstance(exc.cause, ResponseError):
                    return  # Redis answered (not a lock of ours there): nothing to release
                if loop.time() + delay > give_up:
                    self.errors += 1
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESUBSCRIBE_MAX)

    async def _renew(self, key: str, lock: str) -> None:
        tier = self.tier._lane()
        command = tier._script("renew", [key], [lock, tier._lease_ms])
        pause = tier._probation / 3  # the first renewal proves the load alive: a full lease
        while True:
            await asyncio.sleep(pause)
            pause = tier._lease / 3
            try:
                if not await tier._call(command):
                    return  # the lock is gone (invalidated, or lost): the store will fail
            except _Unavailable:
                self.errors += 1


async def _raise(error: BaseException) -> Any:
    raise error


async def _value(value: Any) -> Any:
    return value


def _sha1(payload: bytes) -> str:
    """What Lua's redis.sha1hex answers for `payload`."""
    return hashlib.sha1(payload).hexdigest()


def _digest(base: str) -> str:
    """The key digest in `base` (`<prefix>{<digest>}`)."""
    return base[base.index("{") + 1 : -1]


_ABSENT: Final = object()
