"""One cache's loads through a RedisTier lane: a flight's load, a refresh, a bulk load, each
fleet-wide once, with the counters the cache reports. See the design note in
`cachekit.redis`; `RedisTier.attach` makes one `_Binding` per cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import Any, Final, final

from redis.exceptions import ResponseError

from ._redis_lanes import Lane
from ._redis_protocol import (
    _ERRORS,
    _LOCK,
    _MARGIN,
    _POLL_MAX,
    _POLL_MIN,
    _RECALIBRATE,
    _REFRESH_ROUNDS,
    _RESUBSCRIBE_MAX,
    _BadReply,
    _circuit_open,
    _Command,
    _Unavailable,
)
from ._shared import (
    ERROR,
    SEAL_OVERHEAD,
    VALUE,
    BadPayload,
    Landed,
    SharedCache,
    SharedFailure,
    decode_error,
    encode_error,
    key_digest,
    seal,
    unseal,
)


@final
class _Unopened:
    """`_Binding._load_with`'s `opened` by default: the payload it starts from, if any, has
    not been opened yet."""

    __slots__ = ()


_UNOPENED: Final = _Unopened()


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

    def __init__(self, tier: Lane, name: str, cache: SharedCache) -> None:
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
        # (stale_ttl, stale_if_error): asked once, as the cache's options never change.
        self._stale_windows = cache.stale_windows()
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
        found = await self.look_up(partial(self._load, base, compute, per_call))
        if isinstance(found, Landed):
            return found
        if isinstance(found, SharedFailure):
            raise found
        return await found()

    async def look_up(
        self, bound: Callable[[], Awaitable[Any]], loop: asyncio.AbstractEventLoop | None = None
    ) -> Landed | SharedFailure | Callable[[], Awaitable[Any]]:
        """`_load` (`bound`, from bind()) up to its first acquire, run by the caller that
        leads the flight, in its own task: an entry found is its answer, at the cost of a
        bare read; anything else comes back as the rest of the load, for the flight's task.
        Cancelled while the acquire may be on its way, it releases the lock that acquire
        may have taken (fenced by its value, and waking whoever waits), so the load that
        starts over does not wait for a holder that is gone."""
        assert isinstance(bound, partial) and bound.func == self._load
        base, compute, per_call = bound.args
        tier = self.tier._here(loop)  # `loop`: the running one, if the caller has it
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
            if exc.sent and not isinstance(exc.cause, ResponseError):
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
        outcome = self._open(key, found, tier)
        if type(outcome) is SharedFailure:
            self.hits += 1
            return outcome
        if outcome is not None and (outcome.ttl is None or -outcome.ttl < self._stale_windows[0]):
            self.hits += 1
            self._saw(base, found)
            return outcome
        # Rejected, expired, or past its stale window: as `_load_with` goes on from there.
        return partial(self._load_with, tier, base, compute, per_call, found, outcome)

    async def _ready(self, tier: Lane, base: str) -> bool:
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
        for lane in tier._everyone():
            unsent = lane._unsent
            if unsent and (base in unsent or self.prefix in unsent):
                return False
        if not tier._listening:
            tier._read_unheard = True
        if tier._unsettled():
            await tier._settled(base, self.prefix)
        assert tier._loop is not None
        if tier._loop.time() - tier._clock_read_at > _RECALIBRATE:
            await tier._clock_ready()
        return True

    async def _load_with(
        self,
        tier: Lane,
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
                    if exc.sent and not isinstance(exc.cause, ResponseError):
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
                    if outcome.ttl is not None and -outcome.ttl >= self._stale_windows[0]:
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

    def _remaining(
        self, expires_at: int, negative: bool = False, tier: Lane | None = None
    ) -> float | None:
        """Seconds an entry fresh until `expires_at` (0: no expiry) is fresh in L1 (past
        it, with `negative`: minus how long it has been stale; else 0). `tier`: the
        running loop's lane, if the caller has it at hand."""
        if not expires_at:
            return None
        left = (expires_at - (tier or self.tier._lane())._redis_now()) / 1000
        return left if negative else max(0.0, left)

    def _stored_until(self, fresh_until: int, kind: bytes) -> int:
        """The PXAT of an entry fresh until `fresh_until` (unix ms; 0: never expires): a
        value outlives it by the cache's stale windows, served or kept as a fallback."""
        if not fresh_until or kind != VALUE:
            return fresh_until
        return fresh_until + math.ceil(max(self._stale_windows) * 1000)

    def _open(
        self, key: str, payload: bytes, tier: Lane | None = None
    ) -> Landed | SharedFailure | None:
        """The outcome a stored payload holds, or None if it must not be trusted or is
        past its own expiry (a copy written back after an invalidation, say). `tier`: the
        running loop's lane, if the caller has it at hand."""
        if tier is None:
            tier = self.tier._lane()
        try:
            if len(payload) > tier._max_value_bytes + SEAL_OVERHEAD:  # before any work on it
                raise BadPayload(f"{len(payload)} bytes, over max_value_bytes")
            kind, expires_at, body = unseal(tier._secret, key.encode(), payload)
            remaining = self._remaining(expires_at, True, tier)
            # A value is served stale, or kept as a fallback, for the cache's stale windows
            # past its (signed) fresh time; a failure is not.
            window = max(self._stale_windows) if kind == VALUE else 0.0
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
            stored = await tier._call(tier._script("put", [key], args), urgent=True)
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
            for key in shared if exc.sent else ():  # sent, maybe: they may take their locks
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
                stale = self._stale_windows[0]
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
        tier: Lane,
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
        tier: Lane,
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
            replies = await tier._call(tier._script("put_many", redis_keys, args), urgent=True)
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
        self, tier: Lane, base: str, compute: Callable[[], Awaitable[Any]], refresh: bool
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
        tier: Lane,
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
            stored = await tier._call(
                tier._script("refreshed", [key, refresh_key], args), urgent=True
            )
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
                await tier._call(command, urgent=True)
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
                if not await tier._call(command, urgent=True):
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
