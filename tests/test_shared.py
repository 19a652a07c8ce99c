"""The shared tier's redis-free parts: stable keys, signed payloads, options. No server."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import re
import subprocess
import sys
import uuid
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cachekit import AsyncCache
from cachekit._keys import make_key
from cachekit._shared import (
    ERROR,
    VALUE,
    BadPayload,
    SharedError,
    decode_error,
    encode_error,
    encode_key,
    key_digest,
    seal,
    unseal,
)
from cachekit.redis import RedisTier

ROOT = Path(__file__).resolve().parent.parent


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


Pair = namedtuple("Pair", "a b")

STABLE_KEYS: list[Any] = [
    None,
    0,
    -7,
    2**80,
    1.5,
    float("inf"),
    "héllo",
    b"\x00\xff",
    (1, "a", (None, b"x")),
    frozenset({3, 1, 2}),
    Color.RED,
    datetime.date(2024, 2, 29),
    datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC),
    uuid.UUID(int=42),
    int,
    Point(1, 2),
    Pair(1, 2),
    make_key((1,), {"b": 2, "a": 1}, typed=True),
]


def test_key_digests_are_the_same_in_another_process_with_another_hash_seed() -> None:
    here = [key_digest("c", key) for key in STABLE_KEYS]
    script = (
        "from tests.test_shared import STABLE_KEYS;"
        "from cachekit._shared import key_digest;"
        "print(' '.join(key_digest('c', k) for k in STABLE_KEYS))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split()
        assert out == here


def test_keys_equal_in_a_dict_encode_alike_and_others_apart() -> None:
    assert encode_key(1) == encode_key(1.0) == encode_key(True)
    assert encode_key(frozenset({1, 2})) == encode_key(frozenset({2, 1}))
    distinct = ["1", b"1", 1, (1,), ("a", "b"), ("ab",), None, 1.25, Color.RED, "red"]
    assert len({encode_key(k) for k in distinct}) == len(distinct)
    assert key_digest("a", 1) != key_digest("b", 1)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (decimal.Decimal("1"), decimal.Decimal("1.0")),
        (decimal.Decimal("1"), 1),
        (decimal.Decimal("100"), decimal.Decimal("1E+2")),
        (decimal.Decimal("1.50"), 1.5),
        (decimal.Decimal("0.10"), decimal.Decimal("0.1")),
        (decimal.Decimal("-0"), 0.0),
        (decimal.Decimal("Infinity"), float("inf")),
        (
            datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC),
            datetime.datetime(
                2026, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
        ),
    ],
)
def test_decimals_and_aware_datetimes_equal_in_a_dict_encode_alike(left: Any, right: Any) -> None:
    assert left == right and hash(left) == hash(right)  # one dict key: one Redis key
    assert encode_key(left) == encode_key(right)


def test_decimals_that_differ_encode_apart_even_past_the_context_precision() -> None:
    tiny = decimal.Decimal("1.0000000000000000000000000000001")  # 32 digits: a context rounds
    for left, right in [(decimal.Decimal("0.1"), 0.1), (tiny, 1), (tiny, decimal.Decimal(1))]:
        assert left != right
        assert encode_key(left) != encode_key(right)


@pytest.mark.parametrize(
    ("key", "name"),
    [(object(), "object"), ((1, lambda: 0), "function"), (frozenset({1j}), "complex")],
)
def test_a_key_with_no_stable_encoding_is_a_type_error_naming_the_type(key: Any, name: str) -> None:
    with pytest.raises(TypeError, match=rf"an argument of type '{name}' has none \(pass key="):
        encode_key(key)


def test_sealed_payloads_open_only_at_their_key_and_with_their_secret() -> None:
    secret = b"k" * 32
    at = 1_764_000_000_123
    sealed = seal(secret, b"key", VALUE, at, b"body")
    assert unseal(secret, b"key", sealed) == (VALUE, at, b"body")
    later = sealed[:5] + (at + 60_000).to_bytes(8, "big") + sealed[13:]
    for other_secret, key, payload in [
        (secret, b"other", sealed),
        (b"x" * 32, b"key", sealed),
        (None, b"key", sealed),
        (secret, b"key", seal(None, b"key", VALUE, at, b"body")),
        (secret, b"key", sealed[:-1]),
        (secret, b"key", sealed[:20]),
        (secret, b"key", sealed[:2] + b"\x01" + sealed[3:]),
        (secret, b"key", later),  # its expiry moved: the signature covers it
        (secret, b"key", b""),
    ]:
        with pytest.raises(BadPayload):
            unseal(other_secret, key, payload)
    assert unseal(None, b"key", seal(None, b"key", ERROR, 0, b"e")) == (ERROR, 0, b"e")


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_the_signature_is_hmac_sha256_over_header_key_and_body(length: int) -> None:
    # The format other workers (and other releases) read: computed here from the hash's
    # padded states (#16), it must stay the standard HMAC, for secrets of any length.
    import hashlib
    import hmac

    secret = bytes(range(length))
    at = 1_764_000_000_123
    sealed = seal(secret, b"key", VALUE, at, b"body")
    header = sealed[:13]
    expected = hmac.new(secret, header + b"key" + b"\0" + b"body", hashlib.sha256).digest()
    assert sealed == header + expected + b"body"


def test_a_cached_failure_comes_back_as_its_own_type_and_never_imports() -> None:
    error = decode_error(encode_error(KeyError("user", 7)))
    assert type(error) is KeyError and error.args == ("user", 7)
    odd = decode_error(encode_error(ValueError(object())))
    assert type(odd) is ValueError and odd.args[0].startswith("<object object")
    body = b'{"type": "antigravity:Fly", "args": ["up"]}'
    missing = decode_error(body)
    assert type(missing) is SharedError and str(missing) == "antigravity:Fly: up"
    assert "antigravity" not in sys.modules


def make_tier(**options: Any) -> RedisTier:
    options.setdefault("secret", b"s" * 32)
    return RedisTier(Redis(), **options)  # never connects: no command is sent


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"namespace": "a b"}, ValueError, r"^namespace must be non-empty, without braces"),
        ({"namespace": "{x}"}, ValueError, r"^namespace must be non-empty"),
        ({"namespace": "a:b"}, ValueError, r"^namespace must be non-empty, without braces, colons"),
        ({"secret": "text"}, TypeError, r"^secret must be bytes, a sequence of bytes or None, "),
        ({"secret": b"short"}, ValueError, r"^secret must be at least 16 bytes, got 5$"),
        ({"secret": [b"s" * 32, b"x"]}, ValueError, r"^secret must be at least 16 bytes, got 1$"),
        ({"secret": []}, ValueError, r"^secret must not be an empty sequence"),
        ({"secret": [b"s" * 32, "t"]}, TypeError, r"^secret must hold bytes only, got 't'$"),
        ({"secret": None}, ValueError, r"^secret is required with the default \(pickle\) ser"),
        ({"serializer": object()}, TypeError, r"^serializer must have dumps\(\) and loads\(\)"),
        ({"lock_lease": 0}, ValueError, r"^lock_lease must be >= 0.01 seconds, got 0$"),
        ({"lock_lease": -1}, ValueError, r"^lock_lease must be >= 0 seconds or None, got -1$"),
        ({"wait_timeout": -1}, ValueError, r"^wait_timeout must be >= 0 seconds or None"),
        ({"op_timeout": 0}, ValueError, r"^op_timeout must be > 0 seconds, got 0$"),
        ({"on_error": "ignore"}, ValueError, r"^on_error must be 'degrade' or 'raise', got 'ig"),
        ({"max_value_bytes": 0}, ValueError, r"^max_value_bytes must be > 0, got 0$"),
        ({"max_value_bytes": 1.5}, TypeError, r"^max_value_bytes must be an int, got 1.5$"),
    ],
)
def test_bad_tier_options_fail_early_naming_parameter_and_value(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_tier(**options)


def test_a_client_decoding_responses_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^client must be built with decode_responses=False"):
        RedisTier(Redis(decode_responses=True), secret=b"s" * 32)
    with pytest.raises(TypeError, match=r"^client must be a redis.asyncio.Redis, got 1$"):
        RedisTier(1, secret=b"s" * 32)


def test_cache_options_with_shared_fail_early() -> None:
    tier = make_tier()
    with pytest.raises(ValueError, match=r"^name is required with shared="):
        AsyncCache(shared=tier)
    with pytest.raises(TypeError, match=r"^shared must be a shared tier such as RedisTier"):
        AsyncCache(shared=object(), name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^name must be non-empty, without braces"):
        AsyncCache(shared=tier, name="a{b}")
    AsyncCache(ttl=5, stale_ttl=5, refresh_after=1, stale_if_error=5, shared=tier, name="x")


def test_cachekit_imports_without_redis_and_cachekit_redis_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import cachekit\n"
        "try:\n"
        "    import cachekit.redis\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    assert "pip install 'cachekit-async[redis]'" in out


def test_a_tier_asks_the_cache_only_what_the_shared_cache_protocol_names(tmp_path: Path) -> None:
    # The seam: mypy --strict checks that AsyncCache is a SharedCache, and cachekit.redis
    # reaches no private member of the cache (it used to, through nine Any-typed names).
    from mypy import api

    source = tmp_path / "seam.py"
    source.write_text(
        "from cachekit import AsyncCache\n"
        "from cachekit._shared import SharedCache\n"
        "cache: SharedCache = AsyncCache[int, int](ttl=5)\n"
    )
    stdout, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(source)]
    )
    assert status == 0, stdout
    redis_source = (ROOT / "cachekit" / "redis.py").read_text()
    assert re.findall(r"\bcache\._\w+", redis_source) == []


async def test_failure_ttl_is_the_negative_caching_rule_the_cache_itself_applies() -> None:
    cache: AsyncCache[int, int] = AsyncCache(
        ttl=60, negative_ttl=5, negative_exceptions=(LookupError,)
    )
    assert cache.failure_ttl(KeyError("k")) == 5
    assert cache.failure_ttl(ValueError("v")) is None
    assert cache.failure_ttl(asyncio.CancelledError()) is None
    assert AsyncCache[int, int](ttl=60).failure_ttl(KeyError("k")) is None
