"""The shared tier's redis-free half: what AsyncCache talks to, stable keys, signed payloads.

An AsyncCache built with `shared=tier` calls `tier.attach(name, cache)` once and keeps the
binding it returns; the tier asks of the cache only what `SharedCache` names. The binding
sees the cache at these points only:

    bind(key, compute)   on an L1 miss: wraps the computation so that it asks the shared
                         tier first (raises TypeError at once for a key with no stable
                         encoding); the wrapped computation returns `Landed` or raises
                         `SharedFailure`, so the flight lands with the tier's ttl (a
                         negative one: the value is stale already, served and kept while
                         the cache's stale windows last)
    look_up(bound)       by the caller that leads a new flight, in its own task, before
                         any task is started: what `bind` returned, begun. It returns the
                         outcome the tier holds (`Landed` or `SharedFailure`), or what the
                         flight's task must run to finish (a load, or the wait for another
                         worker's). Cancelled midway, it leaves nothing behind, and the
                         flight's task runs `bound` afresh
    refreshing(bound)    for a background refresh (stale_ttl, refresh_after): what `bind`
                         or `bind_many` returned, turned into one refresh for the fleet
    bind_many(keys, compute_many)  get_many: wraps the bulk loader (TypeError at once for a
                         key with no stable encoding); the wrapped loader, called with the
                         keys to load, maps each to its value, a `Landed` or a
                         `SharedFailure` (not raised: one key's failure is its own)
    stored(key, value, ttl)  after `set()`: write it through, drop it from other L1s
    invalidated(key)     after `invalidate(key)`: drop it everywhere, tell every worker
    cleared()            after `clear()`: drop the cache's keys everywhere, tell every worker

Nothing here imports redis: the key encoding and the payload format are plain functions,
testable without a server, and another backend could implement the same protocol.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import hashlib
import hmac
import json
import pickle
import sys
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any, Final, Protocol, final, runtime_checkable

from ._keys import _KWARGS_MARK


class SharedCache(Protocol):
    """What a shared tier may ask of the cache it serves (AsyncCache implements it): all
    of it, so that the cache's rules (ttl, negative caching) live in the cache alone."""

    def holds_key(self, key: Hashable) -> bool:
        """`key` has an entry or a flight in this process."""
        ...

    def invalidate_here(self, key: Hashable) -> bool:
        """invalidate() in this process only (another worker invalidated the key)."""
        ...

    def clear_here(self) -> None:
        """clear() in this process only (another worker cleared, or broadcasts were lost)."""
        ...

    def ttl_for(self, value: Any, per_call: Any = None) -> float | None:
        """How long a loaded `value` stays fresh (None: no expiry; 0: not kept), given the
        ttl of the call that led the load (`per_call`; None: the cache's)."""
        ...

    def failure_ttl(self, error: BaseException) -> float | None:
        """How long a load's `error` is cached (negative caching), or None: not cached."""
        ...

    def refreshes(self) -> bool:
        """A value may be recomputed while an entry of it is held (stale_ttl,
        stale_if_error or refresh_after)."""
        ...

    def stale_windows(self) -> tuple[float, float]:
        """(stale_ttl, stale_if_error) in seconds, 0.0 for none."""
        ...


@runtime_checkable
class SharedTier(Protocol):
    """What `shared=` accepts: something that binds a named cache to a shared store."""

    def attach(self, name: str, cache: SharedCache) -> SharedBinding: ...


class SharedBinding(Protocol):
    """One cache's view of a shared tier (see the module docstring for when each is called)."""

    def bind(
        self, key: Hashable, compute: Callable[[], Awaitable[Any]], ttl: Any = None
    ) -> Callable[[], Awaitable[Any]]: ...

    async def look_up(
        self, bound: Callable[[], Awaitable[Any]], loop: asyncio.AbstractEventLoop | None = None
    ) -> Landed | SharedFailure | Callable[[], Awaitable[Any]]: ...

    def refreshing(self, bound: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]: ...

    def bind_many(
        self, keys: list[Any], compute_many: Callable[[list[Any]], Awaitable[Any]]
    ) -> Callable[[list[Any]], Awaitable[Any]]: ...

    def stored(self, key: Hashable, value: Any, ttl: float | None) -> None: ...

    def invalidated(self, key: Hashable) -> None: ...

    def cleared(self) -> None: ...

    def counters(self) -> dict[str, int]: ...


@final
class Landed:
    """A value a shared computation hands back with the ttl it lands with in L1.

    The ttl is the one its loader stored it with, or what is left of it in the shared
    store; 0 means "answer the waiters but keep nothing" (None: no expiry).
    """

    __slots__ = ("ttl", "value")

    def __init__(self, value: Any, ttl: float | None) -> None:
        self.value = value
        self.ttl = ttl


class SharedFailure(Exception):
    """Carries a failure that must land with a given ttl: a failure cached by another worker
    (its remaining ttl), or a shared-store error under on_error="raise" (0: never cached).
    The flight unwraps it: waiters receive `error` itself."""

    def __init__(self, error: BaseException, ttl: float) -> None:
        super().__init__(error, ttl)
        self.error = error
        self.ttl = ttl


class SharedError(Exception):
    """A failure cached by another worker whose exception type is not available here."""


def check_name(param: str, value: Any) -> str:
    """A namespace or cache name: it becomes part of every Redis key, so it must be
    non-empty and free of whitespace (the broadcast format), braces (the hash tag) and
    colons (the separator: namespace "a:b" and name "c" would be namespace "a", name
    "b:c", and one's clear() would delete the other's entries)."""
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a str, got {value!r}")
    if not value or any(c in value for c in "{}: \t\r\n"):
        raise ValueError(
            f"{param} must be non-empty, without braces, colons or whitespace, got {value!r}"
        )
    return value


# ---------------------------------------------------------------------- stable keys

_SCALAR_TYPES: Final = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
)


def encode_key(key: Any) -> bytes:
    """A byte string for `key` that is the same in every process and every run.

    Never `hash()` (randomised per process for str and bytes) and never `repr()` of an
    arbitrary object (it may hold an address). Numbers that compare equal encode alike
    (1, 1.0 and True), as they are one key in a dict. Raises TypeError naming the type of
    the first part with no stable encoding.
    """
    out = bytearray()
    _encode(key, out)
    return bytes(out)


def _encode(obj: Any, out: bytearray) -> None:
    kind = type(obj)
    if obj is None:
        out += b"N"
    elif kind is str:
        data = obj.encode("utf-8", "surrogatepass")
        out += b"s%d:" % len(data)
        out += data
    elif kind is int or kind is bool:
        out += b"i%d;" % obj
    elif kind is float:
        if obj.is_integer():
            out += b"i%d;" % int(obj)
        else:
            out += b"f" + repr(obj).encode() + b";"
    elif kind is bytes:
        out += b"b%d:" % len(obj)
        out += obj
    elif kind is tuple or kind is list:
        out += b"t%d:" % len(obj)
        for item in obj:
            _encode(item, out)
    elif kind is frozenset or kind is set:
        _encode_unordered(b"S", [encode_key(item) for item in obj], out)
    elif kind is dict:
        _encode_unordered(b"D", [encode_key(k) + encode_key(v) for k, v in obj.items()], out)
    elif obj is _KWARGS_MARK:
        out += b"K"
    elif isinstance(obj, type):
        _encode_name(b"T", obj, out)
    elif isinstance(obj, Enum):
        _encode_name(b"E", kind, out)
        _encode(obj.value, out)
    elif isinstance(obj, decimal.Decimal):
        _encode_decimal(obj, out)
    elif isinstance(obj, datetime.datetime) and obj.utcoffset() is not None:
        # Aware datetimes are equal when they name the same instant, whatever their zone.
        _encode_name(b"X", datetime.datetime, out)
        _encode(str(obj.astimezone(datetime.UTC)), out)
    elif isinstance(obj, _SCALAR_TYPES):
        _encode_name(b"X", kind, out)
        _encode(str(obj), out)
    elif is_dataclass(obj):
        _encode_name(b"C", kind, out)
        _encode(tuple(getattr(obj, f.name) for f in fields(obj)), out)
    elif isinstance(obj, tuple) and hasattr(kind, "_fields"):  # a namedtuple
        _encode_name(b"C", kind, out)
        _encode(tuple(obj), out)
    else:
        raise TypeError(
            f"a shared cache key needs arguments with a stable encoding across processes; "
            f"an argument of type {kind.__qualname__!r} has none (pass key= to build the key)"
        )


def _encode_decimal(value: decimal.Decimal, out: bytearray) -> None:
    """A Decimal encodes as the int or float it equals, if any (Decimal('1.0') == 1 ==
    1.0, one dict key); else by its exact value: digits without trailing zeros, exponent
    (never through a context, which would round two different values together)."""
    if value.is_nan():
        _encode_name(b"X", decimal.Decimal, out)
        _encode(str(value), out)
    elif value.is_infinite() or value == value.to_integral_value():
        _encode(float(value) if value.is_infinite() else int(value), out)
    elif decimal.Decimal(float(value)) == value:
        _encode(float(value), out)
    else:
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        while digits and digits[-1] == 0:
            digits, exponent = digits[:-1], exponent + 1
        out += b"d-" if sign else b"d"
        out += "".join(map(str, digits)).encode() + b"e%d;" % exponent


def _encode_unordered(tag: bytes, parts: list[bytes], out: bytearray) -> None:
    parts.sort()
    out += tag + b"%d:" % len(parts)
    for part in parts:
        out += part


def _encode_name(tag: bytes, kind: type, out: bytearray) -> None:
    out += tag
    _encode(f"{kind.__module__}.{kind.__qualname__}", out)


def key_digest(name: str, key: Any) -> str:
    """The hex digest naming `key` of cache `name` in the shared store."""
    data = name.encode() + b"\0" + encode_key(key)
    return hashlib.sha256(data).hexdigest()[:40]


# ---------------------------------------------------------------------- payloads

MAGIC: Final = b"ck"
VERSION: Final = 2  # 2: the header carries the entry's expiry
VALUE: Final = b"v"  # the body is the serializer's bytes of a value
ERROR: Final = b"e"  # the body is cachekit's own JSON of a cached failure
_SIGNED: Final = 1  # flags bit: a 32-byte HMAC-SHA256 follows the header
# magic (2), version, kind, flags, expiry: unix ms on the store's clock, 0 for none (8)
_HEADER: Final = 13
_MAC: Final = 32
SEAL_OVERHEAD: Final = _HEADER + _MAC  # the most a sealed payload adds to its body


class BadPayload(Exception):
    """A payload that must not be deserialized: unsigned, forged, truncated, unknown format."""


Secrets = tuple[bytes, ...]  # the first signs; every one verifies; () when there is none


def check_secrets(secret: Any) -> Secrets:
    """`secret=` as a tuple: None, one bytes, or a non-empty sequence of them (rotation:
    the first signs, all verify), each at least 16 bytes."""
    if secret is None:
        return ()
    if isinstance(secret, bytes):
        items: list[Any] = [secret]
    elif isinstance(secret, Sequence) and not isinstance(secret, str):
        items = list(secret)
        if not items:
            raise ValueError("secret must not be an empty sequence (None: no secret)")
    else:
        raise TypeError(f"secret must be bytes, a sequence of bytes or None, got {secret!r:.40}")
    for item in items:
        if not isinstance(item, bytes):
            raise TypeError(f"secret must hold bytes only, got {item!r:.40}")
        if len(item) < 16:
            raise ValueError(f"secret must be at least 16 bytes, got {len(item)}")
    return tuple(items)


def _as_secrets(secret: bytes | Sequence[bytes] | None) -> Secrets:
    if secret is None:
        return ()
    return (secret,) if isinstance(secret, bytes) else tuple(secret)


# secret -> SHA-256 states after its inner and outer HMAC pads (RFC 2104), copied for each
# MAC: keying is a third of the cost of a MAC of a small payload, and hmac's own copy()
# adds as much again in Python. Bounded: cleared when full.
_KEYED: dict[bytes, tuple[Any, Any]] = {}
_KEYED_MAX: Final = 64
_BLOCK: Final = 64  # SHA-256's block size


def _pads(secret: bytes) -> tuple[Any, Any]:
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
    return inner, outer


def _mac(secret: bytes, header: bytes, key: bytes, body: bytes) -> bytes:
    """HMAC-SHA256(secret, header + key + NUL + body)."""
    pads = _KEYED.get(secret)
    if pads is None:
        if len(_KEYED) >= _KEYED_MAX:
            _KEYED.clear()
        pads = _KEYED[secret] = _pads(secret)
    inner = pads[0].copy()
    inner.update(header + key + b"\0" + body)
    outer = pads[1].copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def seal(
    secret: bytes | Sequence[bytes] | None, key: bytes, kind: bytes, expires_at: int, body: bytes
) -> bytes:
    """The stored form of `body`: a versioned header with the moment the entry expires in
    the store (so that a reader needs no second command to learn it), then (with a
    secret: the first of them) an HMAC-SHA256 over the header, the store key and the
    body, so a payload is valid at one key only and its expiry cannot be altered."""
    keys = _as_secrets(secret)
    flags = _SIGNED if keys else 0
    header = MAGIC + bytes((VERSION, kind[0], flags)) + expires_at.to_bytes(8, "big")
    if not keys:
        return header + body
    return header + _mac(keys[0], header, key, body) + body


def unseal(
    secret: bytes | Sequence[bytes] | None, key: bytes, payload: bytes
) -> tuple[bytes, int, bytes]:
    """(kind, expires_at, body) of a stored payload, or BadPayload. With secrets, only a
    payload whose HMAC checks out under one of them gets here; nothing unchecked ever
    reaches a deserializer."""
    if len(payload) < _HEADER or payload[:2] != MAGIC:
        raise BadPayload("not a cachekit payload")
    version, kind, flags = payload[2], payload[3:4], payload[4]
    if version != VERSION:
        raise BadPayload(f"unknown payload format version {version}")
    if kind not in (VALUE, ERROR):
        raise BadPayload(f"unknown payload kind {kind!r}")
    header = payload[:_HEADER]
    expires_at = int.from_bytes(header[5:], "big")
    signed = bool(flags & _SIGNED)
    keys = _as_secrets(secret)
    if not keys:
        if signed or flags:
            raise BadPayload("a signed payload, but this tier has no secret")
        return kind, expires_at, payload[_HEADER:]
    if not signed or len(payload) < _HEADER + _MAC:
        raise BadPayload("an unsigned or truncated payload, but this tier has a secret")
    mac, body = payload[_HEADER : _HEADER + _MAC], payload[_HEADER + _MAC :]
    # Every secret is tried (no early exit): which one matched is not timed.
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(mac, _mac(candidate, header, key, body))
    if not matched:
        raise BadPayload("the payload's signature does not match")
    return kind, expires_at, body


def encode_error(error: BaseException) -> bytes:
    """A cached failure as JSON: its type's import path and its arguments (as strings when
    they are not plain JSON), whatever the serializer: never a pickle."""
    args: list[Any] = list(error.args)
    if not all(type(a) in (str, int, float, bool) or a is None for a in args):
        args = [str(error)]
    kind = type(error)
    return json.dumps({"type": f"{kind.__module__}:{kind.__qualname__}", "args": args}).encode()


def decode_error(body: bytes) -> Exception:
    """The exception a cached failure stands for: the same type (if its module is already
    imported here; a payload never makes us import anything) and the same arguments."""
    data = json.loads(body)
    path, args = data["type"], data["args"]
    if not isinstance(path, str) or not isinstance(args, list):
        raise ValueError("malformed failure payload")
    module_name, _, qualname = path.partition(":")
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if isinstance(target, type) and issubclass(target, Exception):
        try:
            error: Exception = target(*args)
        except Exception:  # its constructor wants other arguments: keep type and args
            error = target.__new__(target)
            error.args = tuple(args)
        return error
    return SharedError(f"{path}: {', '.join(map(str, args))}")


class JSONSerializer:
    """A serializer that can only build plain data (dict, list, str, numbers, None), so a
    forged payload cannot run code; without a secret, it can still forge values and cached
    failures. Tuples come back as lists."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    """pickle, for a tier with a secret: only payloads signed with it are unpickled."""

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


@final
class InsecurePickleSerializer(PickleSerializer):
    """pickle without a secret: whoever can write to the shared store runs code in every
    worker that reads from it. Only for a store nothing else can write to; the tier logs a
    warning when it is built with it."""


# The opt-out by name: RedisTier(..., serializer=insecure_pickle) with no secret.
insecure_pickle: Final = InsecurePickleSerializer()
