"""The docstrings are the reference: every option documented once, with its real default."""

from __future__ import annotations

import inspect
import re
from typing import Any, get_type_hints

import pytest

from cachekit import AsyncCache, async_cached, async_cached_many
from cachekit._decorator import CacheOptions

# An option's entry: four spaces, its name, its type, " = " and its default, at line start.
_ENTRY = re.compile(r"^    (\w+): .+ = (.+)$", re.MULTILINE)


def documented(obj: Any) -> dict[str, str]:
    """Option name -> the default its docstring states."""
    doc = obj.__doc__ or ""
    entries = _ENTRY.findall(doc)
    names = [name for name, _ in entries]
    assert len(names) == len(set(names)), f"an option documented twice in {obj.__name__}"
    return dict(entries)


def test_every_async_cache_option_is_documented_with_its_default() -> None:
    parameters = inspect.signature(AsyncCache.__init__).parameters
    expected = {name: repr(p.default) for name, p in parameters.items() if name != "self"}
    assert documented(AsyncCache) == expected


def test_the_decorators_document_the_same_options_as_cache_options() -> None:
    cache_options = set(get_type_hints(CacheOptions))
    assert set(documented(AsyncCache)) == cache_options
    decorator = documented(async_cached)
    assert set(decorator) == cache_options | {"key", "typed"}
    parameters = inspect.signature(async_cached).parameters
    assert (decorator["key"], decorator["typed"]) == (
        repr(parameters["key"].default),
        repr(parameters["typed"].default),
    )
    assert documented(async_cached_many) == documented(AsyncCache)


@pytest.mark.parametrize("obj", [AsyncCache, async_cached, async_cached_many])
def test_each_documented_option_says_what_it_means(obj: Any) -> None:
    doc = obj.__doc__ or ""
    for name in documented(obj):
        meaning = doc.split(f"\n    {name}: ", 1)[1].split("\n", 2)[1]
        assert meaning.startswith("        ") and len(meaning.strip()) > 20, name
