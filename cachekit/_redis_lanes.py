"""The lanes of a RedisTier (see the design note in `cachekit.redis`): a lane per event
loop, with its client, subscription, commands, circuit and broadcasts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import hashlib
import hmac
import itertools
import logging
import math
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from functools import partial
from typing import Any, Final, Protocol, Self, final

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._bounds import Deadlines, Slots
from ._options import check_seconds
from ._redis_direct import Direct
from ._redis_protocol import (
    _ACQUIRE,
    _DISCARD,
    _ERRORS,
    _INVALIDATE,
    _POLL_MIN,
    _PUT,
    _PUT_MANY,
    _REFRESH,
    _REFRESHED,
    _RELEASE,
    _RENEW,
    _RESUBSCRIBE_MAX,
    _WATCH,
    _WRITE,
    _BadReply,
    _Command,
    _Unavailable,
)
from ._shared import (
    InsecurePickleSerializer,
    JSONSerializer,
    PickleSerializer,
    SharedCache,
    check_name,
    check_secrets,
    key_digest,
)

log = logging.getLogger("cachekit.redis")


_TIMEOUTS: Final = (TimeoutError, RedisTimeoutError)  # op_timeout's, or the client's own
_TRIP: Final = 3  # consecutive failures that open the circuit (degrade mode)
# seconds a connection of a tier's own client may take to open or to close (closing waits for
# what is still buffered to be sent, which a stalled Redis never reads)
_CONNECT_TIMEOUT: Final = 5.0
_PROBATION: Final = 1.0  # seconds a new lock lasts (at least 4 op_timeouts) until renewed
# op_timeouts of silence after which the subscription is PINGed; as long again without
# any answer and it counts as broken (a peer that vanished without closing the connection):
# a silent subscription is noticed within 2 * _IDLE op_timeouts (1 s by default).
_IDLE: Final = 2
# Invalidations, sets and clears waiting for Redis to answer again, one per key (the
# latest): past this many, each cache's are collapsed into one clear of that cache.
_UNSENT_MAX: Final = 10_000
_RESEND_BATCH: Final = 256  # commands resent at a time, each batch awaited before the next
_MAX_SLOTS: Final = 128  # concurrent commands when the client's pool is unbounded
_PLAUSIBLE_MS: Final = 1_577_836_800_000  # 2020-01-01: a TIME reading before it is not one
_DRIFT: Final = 1e-3  # how fast Redis's clock may run ahead of ours (NTP slews at most 5e-4)


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


class _Attached(Protocol):
    """What a lane asks of a cache's binding (`_redis_loads._Binding`): its key prefix, its
    error count, its cache (for broadcasts from other workers), and two callbacks."""

    prefix: str
    errors: int
    cache: SharedCache

    def dropped(self, digest: str) -> None: ...

    async def _send_clear(self, *, again: bool = False) -> None: ...


class Lane:
    """A RedisTier on one event loop: its client and subscription, its commands (each
    within op_timeout, with a connection slot), the circuit, and the broadcasts. The
    tier is the lane of the first loop that uses it; each other loop running at the same
    time gets a sibling (`_sibling`). What a cache loads through it is `_redis_loads`'s;
    `cachekit.redis.RedisTier` is this, plus `attach`."""

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
        self._direct = Direct.of(client, self._probation_ms, self._new_connection)
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
        # (op_timeout counts from the call, the wait included) instead of exhausting the pool.
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
        self._bindings: dict[str, weakref.WeakSet[_Attached]] = {}
        # base or cache prefix -> the last command sent for it (set, invalidate, clear). A
        # read of that key waits for it first, so a call after invalidate() never reads what
        # it deletes; a newer command for it waits for it too (`_in_order`), so Redis applies
        # them in the order issued. A task removes itself when done, if still registered.
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Tasks started and not yet seen to finish: invalidations, clears, releases
        # (`_background`, awaited by settle()) and lease renewals (cancelled by their loads).
        self._background: set[asyncio.Task[Any]] = set()
        self._renewals: set[asyncio.Task[Any]] = set()  # the resender, openings: never settled
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
        self._lanes: list[Lane] = []
        self._lanes_lock = threading.Lock()
        self._lane_ids = itertools.count(1)
        self._mark = self._worker

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 50, **options: Any) -> Self:
        """A tier over its own client for `url` (closed by `aclose()`): at most
        `max_connections` connections, no client-side retries and no socket timeout
        (op_timeout bounds each command instead: redis-py 8's default of 5 s adds a timer,
        and on Python 3.11 a task, to every send and read). Connecting and closing a
        connection stay bounded by `_CONNECT_TIMEOUT`."""
        client = Redis.from_url(
            url,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=None,
            socket_connect_timeout=_CONNECT_TIMEOUT,
        )
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

    def _everyone(self) -> tuple[Lane, ...]:
        """The tier's lanes: itself and its siblings (read on every Redis read: with one
        loop, most often, no list is built)."""
        home = self._home
        return (home, *home._lanes) if home._lanes else (home,)

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

    def _here(self, loop: asyncio.AbstractEventLoop | None = None) -> Lane | None:
        """The lane of the running loop (binding one if it has none), or None when this
        call cannot use Redis: the tier is closed, or it is a second loop of a Cluster
        client (which cannot be copied for a lane: logged once). `loop`: the running one,
        if the caller has it at hand (asking for it costs a system call on Python 3.11)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if loop is self._loop:
            return None if self._closed else self
        for lane in self._lanes:
            if lane._loop is loop:
                return None if lane._closed else lane
        return self._lane_for(loop)

    def _lane(self) -> Lane:
        """The lane of the running loop, which has one (a task of it is running)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return self
        for lane in self._home._lanes:
            if lane._loop is loop:
                return lane
        return self

    def _lane_for(self, loop: asyncio.AbstractEventLoop) -> Lane | None:
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

    def _sibling(self) -> Lane:
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
        lane._direct = Direct.of(lane._client, self._probation_ms, lane._new_connection)
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

    async def _call(self, command: Callable[[], Awaitable[Any]], urgent: bool = False) -> Any:
        """Run one command within op_timeout, the wait for a connection slot included;
        _Unavailable if it fails or the circuit is open (in either on_error mode). An
        `urgent` command finishes work under way (see Slots.take)."""
        loop = self._loop
        assert loop is not None and self._free is not None and self._deadlines is not None
        if self._closed or loop.time() < self._open_until:
            raise _Unavailable(None)
        task = asyncio.current_task(loop)  # (with its loop: no getpid() on Python 3.11)
        assert task is not None
        cancelling = task.cancelling()
        deadlines = self._deadlines
        running = deadlines.start(task)
        slots = self._free
        its_turn = False  # a command still queued for a slot has not asked Redis anything
        try:
            try:
                if not slots.try_take():
                    await slots.take(urgent)
                its_turn = True
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
            if _per_key(exc):
                self._answered()  # Redis is up: this one key is wrong, not Redis
            elif its_turn and (not isinstance(exc, _TIMEOUTS) or deadlines.blames_redis(running)):
                self._failed(exc, loop)
            # else it timed out in the slot queue, or while Redis showed signs of life or
            # the loop ran late (its extensions spent): the wait was this process's, not
            # Redis's. Its caller goes on without Redis, and the circuit stays closed (a
            # Redis that stalls times out the commands holding the slots, and those open it).
            raise _Unavailable(exc, its_turn) from exc
        self._answered()
        return result

    def _answered(self) -> None:
        """Redis answered: the failures in a row, and the outage if any, are over."""
        deadlines = self._deadlines
        assert deadlines is not None
        deadlines.alive += 1
        if self._failures:
            self._failures = 0
            if self._outage:
                self._outage = False
                log.warning("cachekit: Redis answers again; caches share through it again")

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Callable[[], Awaitable[Any]]:
        direct = self._direct
        if direct is not None:
            return partial(direct.script, self._scripts[name], keys, args)
        return partial(self._scripts[name], keys=keys, args=args)

    def _new_lock(self) -> str:
        return f"lock:{self._worker}:{next(self._locks)}"

    async def _acquire(self, key: str, lock: str) -> bytes | None:
        """The entry at `key`, or the lock another worker holds on it, or None: `lock` is
        now ours, for one lease. One native command: a hit costs what a GET costs.
        Finding `lock` itself (marked or not) means it is ours: a client that retries
        sent the command again after a reply was lost, and the first one took it."""
        ours = lock.encode()
        if self._native_acquire:
            try:
                direct = self._direct
                if direct is not None:
                    reply = await direct.acquire(key.encode(), ours)
                else:
                    reply = await self._client.execute_command(
                        "SET", key.encode(), ours, *self._acquire_tail, get=True
                    )
                found = _bytes_or_none(reply, "SET NX GET")
            except ResponseError as exc:
                if "syntax" not in str(exc).lower():
                    raise
                self._native_acquire = False  # Redis < 7.0: NX and GET do not combine there
            else:
                return None if found is not None and _is_own(found, ours) else found
        reply = await self._scripts["acquire"](keys=[key], args=[lock, self._probation_ms])
        found = _bytes_or_none(reply, "the acquire script")
        return None if found is not None and _is_own(found, ours) else found

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
            if self._free is not None:  # the commands queued for a slot go without Redis now
                self._free.turn_away(partial(_Unavailable, None))

    async def _new_connection(self, pool: Any, args: tuple[str, ...]) -> Any:
        """A connection of `pool` that must be opened (or opened again) first, for the
        command running now. Opened in a task of the tier's (`_open`), so that it outlives
        the command's deadline: it then joins the pool, and the command's slot stays taken
        until it has (the pool counts it as in use). redis-py abandons a connection whose
        opening is cancelled, and the next command starts over: in a burst on a cold pool,
        where opening takes longer than op_timeout, no connection would ever open."""
        assert self._loop is not None and self._free is not None
        handed: asyncio.Future[Any] = self._loop.create_future()
        opening = self._spawn(self._open(pool, args, handed), self._renewals)
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                # handed over as the command was cancelled: back to the pool
                opening = self._spawn(pool.release(handed.result()), self._renewals)
            slots = self._free
            slots.keep()
            opening.add_done_callback(lambda _: slots.give_back())
            raise

    async def _open(self, pool: Any, args: tuple[str, ...], handed: asyncio.Future[Any]) -> None:
        """Get `pool`'s connection (opening it) for the command waiting on `handed`, or,
        if that command gave up meanwhile, put it in the pool, open. Within
        _CONNECT_TIMEOUT, whatever the client's own timeouts: a handshake that is never
        answered (a client with no socket timeout, a peer gone silent) must not keep its
        slot for good."""
        deadlines = self._deadlines
        assert deadlines is not None
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                connection = await pool.get_connection(*args)
        except asyncio.CancelledError:  # the tier closes: so does its command
            handed.cancel()
            raise
        except Exception as exc:  # the command's to raise (nobody's, if it gave up)
            if not handed.done():
                handed.set_exception(exc)
            return
        deadlines.alive += 1  # Redis answered the connection's handshake
        if handed.done():
            await pool.release(connection)
        else:
            handed.set_result(connection)

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
        binding: _Attached,
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
        binding: _Attached,
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


def _is_own(found: bytes, lock: bytes) -> bool:
    """`found` is `lock`, or `lock` marked by the workers waiting for it (see _WATCH)."""
    return found.startswith(lock) and (len(found) == len(lock) or found[len(lock)] == 0x20)
