"""RedisTier: a shared tier on Redis, so that many processes share results and load each
key once between them. With its private modules (`_redis_loads`, `_redis_protocol`), the
only part of cachekit that imports redis (`cachekit-async[redis]`).

Design note.

Keys. A cache key of cache `name` is `base = ck:<namespace>:<name>:{<digest>}`, where the
digest is SHA-256 of a stable encoding of the key (see `_shared.encode_key`). One Redis key,
`base:v`, holds either the entry (a sealed payload) or, while it loads, its load lock
(`lock:<worker>:<n>`, unique fleet-wide): one key, one Cluster slot for every script below.

Modules. `RedisTier` (here) is a `_redis_lanes.Lane`, the tier on one event loop with its
commands, circuit and broadcasts, that attaches caches: each gets a `_redis_loads._Binding`,
its loads through the lane. `_redis_protocol` holds what Redis holds and the scripts that
change it, `_bounds` the slots and deadlines of a lane's commands. Imports run one way:
this module, loads, lanes, protocol.

A load, fleet-wide. On an L1 miss, the caller that leads the flight (one per key per
process) sends one native command from its own task (`_Binding.look_up`),
`SET base:v <lock> NX GET PX <probation>`: it answers the entry (a hit, answered with no
flight task at all), or another worker's lock (wait), or nothing, in which case the lock
is now ours; a flight task starts only to load, or to wait. A hit costs what a
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
included, extended (until it has waited 4 s) while the wait is this process's: Redis
answered others, or the loop ran late (`_bounds`). In the slot queue, stores, renewals and
releases go before lookups. With on_error="degrade", a failed command counts in
`shared_errors` and the call goes on in-process (L1 and the in-process flight); with
on_error="raise", the caller gets the Redis error (never cached). In both, three failures
in a row that blame Redis (not a timeout still queued for a slot, nor one excused as above,
unless Redis said nothing in all its wait: `Deadlines.blames_redis`) open a circuit for
`cooldown` seconds, during which calls skip Redis altogether (raise: fail at once), those
still queued for a slot included (`Slots.turn_away`); one warning is logged per outage.
Invalidations, sets and clears issued during an outage are queued, one per key, and sent
again in batches when Redis answers.

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

import weakref
from typing import final

try:
    import redis.asyncio  # noqa: F401 - the extra, checked before any module imports it
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "cachekit.redis needs redis-py: install the extra with  pip install 'cachekit-async[redis]'"
    ) from exc

from ._redis_lanes import Lane
from ._redis_loads import _Binding
from ._shared import (
    InsecurePickleSerializer,
    JSONSerializer,
    PickleSerializer,
    SharedCache,
    SharedError,
    check_name,
    insecure_pickle,
)

__all__ = [
    "RedisTier",
    "JSONSerializer",
    "PickleSerializer",
    "InsecurePickleSerializer",
    "insecure_pickle",
    "SharedError",
]


@final
class RedisTier(Lane):
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
        Seconds each Redis command may take, its wait for a connection included (> 0);
        more while Redis answers others or the loop runs late, up to 4 s (or 4x).
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

    def attach(self, name: str, cache: SharedCache) -> _Binding:
        """Called by AsyncCache(shared=self, name=...)."""
        check_name("name", name)
        binding = _Binding(self, name, cache)
        self._bindings.setdefault(binding.prefix, weakref.WeakSet()).add(binding)
        return binding
