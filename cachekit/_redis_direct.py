"""The tier's commands sent on a connection of the client's own pool without redis-py's
client layer around them: the acquire (`SET key lock NX GET PX ms`), the one command of a
Redis hit, and the scripts (`EVALSHA`).

That layer (`Redis.execute_command`: retries, response callbacks, and from redis-py 8
per-command metrics) costs a hit more CPU than cachekit's own work on it. Where it would
do nothing for this command, the route below does what it does, and no more: take a
connection from the pool, send the packed command, read the reply, give the connection
back. redis-py's connection still does the rest: connecting (and reconnecting a dropped
connection), health checks, socket timeouts, RESP2 or RESP3, and dropping a connection
whose command was interrupted (a cancellation included), so a reply is never left unread
on a connection that goes back to the pool.

A connection that must be opened first (the pool has no open one idle) is opened by the
tier (`Lane._new_connection`), so that it outlives the deadline of the command that asked
for it. On a busy loop, opening takes several slow iterations; through `execute_command`,
a script whose deadline struck mid-handshake dropped its connection, and the next one
started over (a run of 1,000 callers serving stale values opened 2,500 connections for
pools of 50, and the slots, all held by openings, answered nothing for an op_timeout).

It is taken only for a client where `execute_command` would add nothing this command
needs: a plain `redis.asyncio.Redis` (no subclass changing `execute_command`), over a
connection pool, not in single-connection mode, that retries nothing (as `from_url`
builds it; the tier's op_timeout and circuit bound each command instead; the one resend
after a closed connection is the acquire's own, see `acquire`). Any other client keeps
`execute_command`. Instrumentation that patches `redis.asyncio.Redis.execute_command`
itself (rather than a subclass) does not see these reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

# How the tier opens a connection of a pool, given the arguments of `get_connection`.
Opener = Callable[[Any, tuple[str, ...]], Awaitable[Any]]

_SET: Final = b"*7\r\n$3\r\nSET\r\n"  # an array of 7 bulk strings: SET key lock NX GET PX ms


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


class Direct:
    """The tier's commands on a connection of `client`'s pool: `acquire` and `script`."""

    __slots__ = ("_open", "_pool", "_pool_args", "_tail")

    def __init__(self, pool: Any, probation_ms: int, opener: Opener) -> None:
        self._pool = pool
        self._open = opener
        # redis-py 5 asks get_connection() for a command name; 6 and later deprecate it.
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
        takes_name = parameter is not None and parameter.default is inspect.Parameter.empty
        self._pool_args: tuple[str, ...] = ("SET",) if takes_name else ()
        self._tail = b"".join(_bulk(a) for a in (b"NX", b"GET", b"PX", b"%d" % probation_ms))

    @classmethod
    def of(cls, client: Any, probation_ms: int, opener: Opener) -> Direct | None:
        """The route for `client`, or None where `execute_command` must stay (see above)."""
        if type(client).execute_command is not Redis.execute_command:
            return None
        pool = getattr(client, "connection_pool", None)
        if pool is None or client.single_connection_client or client.connection is not None:
            return None
        if _retries(client) != 0 or not isinstance(
            getattr(pool, "_available_connections", None), list
        ):  # (the idle connections, last out first, of redis-py 5 to 8's pool)
            return None
        return cls(pool, probation_ms, opener)

    async def acquire(self, key: bytes, lock: bytes) -> Any:
        """`SET key lock NX GET PX probation_ms`. The reply: the value `key` held (bytes) or
        None; raises what the command raises (a ResponseError for an error reply, as
        `execute_command` does).

        A connection the server closed while it sat in the pool (Redis's idle `timeout`, a
        restart) fails its next command: redis-py 8's pool does not notice before sending.
        The command is then sent once more, on a new connection. That is safe for this
        command only because the tier takes finding its own lock as holding it (a first
        send that did run took the lock); no other command is sent twice."""
        packed = _SET + _bulk(key) + _bulk(lock) + self._tail
        try:
            return await self._send(packed)
        except RedisConnectionError:
            return await self._send(packed)

    async def script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """`script` (registered on the client) run by `EVALSHA`: its reply as Lua returned
        it (redis-py has no response callback for EVALSHA either). A script Redis does not
        know (NOSCRIPT: flushed, or a restart) is run by the script object itself, which
        loads it through the client. Sent once: a script is not safe to send twice."""
        try:
            return await self._send(("EVALSHA", script.sha, len(keys), *keys, *args))
        except NoScriptError:
            return await script(keys=keys, args=args)

    async def _send(self, command: bytes | tuple[Any, ...]) -> Any:
        """Send `command` (packed, or its arguments to pack) and read its reply."""
        pool = self._pool
        idle = pool._available_connections  # (redis-py 5 to 8: checked by `of`)
        if idle and idle[-1].is_connected:  # the one get_connection takes next
            connection = await pool.get_connection(*self._pool_args)
        else:
            connection = await self._open(pool, self._pool_args)
        try:
            if type(command) is tuple:
                command = connection.pack_command(*command)
            await connection.send_packed_command(command)
            return await connection.read_response()
        finally:
            await pool.release(connection)


def _retries(client: Any) -> int | None:
    """How many times `client` retries a failed command; None if it cannot be told."""
    retry = client.get_retry()
    if retry is None:  # redis-py 5: the connections' own default, which may retry
        return None
    count = getattr(retry, "get_retries", None)  # redis-py 6 and later
    retries = count() if count is not None else getattr(retry, "_retries", None)
    return retries if isinstance(retries, int) else None
