"""The docstrings are the reference: every option documented once, with its real default.

The options, their defaults and their meanings are written once, as the fields of
`CacheConfig`; `CacheOptions` types them for callers. These tests hold the two, the
signatures and the docstrings to each other.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import pytest

from cachekit import AsyncCache, async_cached, async_cached_many
from cachekit._config import CacheConfig, CacheOptions, KeywordOptions

# An option's entry, in the docstring dedented (as Python 3.13 stores it): its name at the
# start of a line, its type, " = " and its default; what it means follows, indented.
_ENTRY = re.compile(r"^(\w+): .+ = (.+)$", re.MULTILINE)

OPTIONS = {f.name: repr(f.default) for f in dataclasses.fields(CacheConfig) if f.init}


def documented(obj: Any) -> dict[str, str]:
    """Option name -> the default its docstring states."""
    entries = _ENTRY.findall(inspect.cleandoc(obj.__doc__ or ""))
    names = [name for name, _ in entries]
    assert len(names) == len(set(names)), f"an option documented twice in {obj.__name__}"
    return dict(entries)


def test_cache_options_type_exactly_the_configured_options() -> None:
    assert CacheOptions.__optional_keys__ == set(OPTIONS)
    assert KeywordOptions.__optional_keys__ == set(OPTIONS) - {"maxsize"}


def test_async_cache_takes_maxsize_positionally_and_the_rest_by_keyword() -> None:
    parameters = inspect.signature(AsyncCache.__init__).parameters
    assert repr(parameters["maxsize"].default) == OPTIONS["maxsize"]
    assert [p.kind for p in parameters.values()][1:] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_KEYWORD,
    ]


@pytest.mark.parametrize("obj", [AsyncCache, async_cached_many])
def test_every_option_is_documented_with_its_default(obj: Any) -> None:
    assert documented(obj) == OPTIONS


def test_the_decorator_documents_its_own_options_too() -> None:
    parameters = inspect.signature(async_cached).parameters
    own = {name: repr(parameters[name].default) for name in ("key", "typed")}
    assert documented(async_cached) == {**own, **OPTIONS}


@pytest.mark.parametrize("obj", [AsyncCache, async_cached, async_cached_many])
def test_each_documented_option_says_what_it_means(obj: Any) -> None:
    doc = inspect.cleandoc(obj.__doc__ or "")
    for name in documented(obj):
        meaning = doc.split(f"\n{name}: ", 1)[1].split("\n", 2)[1]
        assert meaning.startswith("    ") and len(meaning.strip()) > 20, name


def test_every_redis_tier_option_is_documented_with_its_default() -> None:
    from cachekit.redis import RedisTier

    parameters = inspect.signature(RedisTier.__init__).parameters
    expected = {
        name: repr(p.default) for name, p in parameters.items() if name not in ("self", "client")
    }
    assert documented(RedisTier) == expected
