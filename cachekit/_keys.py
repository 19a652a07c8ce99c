"""Cache keys built from a call's arguments.

Two builders. For a function with a fixed signature (no *args, no **kwargs), the decorator
generates code that binds the arguments by name, so f(1), f(x=1) and f(1, y=<default>)
share one key: a single argument is its own key, several make a tuple. Any other
function gets `make_key`, which keeps positional and keyword arguments apart and sorts
the keywords, so keyword order does not matter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from typing import Any, Final

_KWARGS_MARK: Final = object()  # separates positional from keyword arguments in a key
_SELF_KEYED: Final = frozenset({int, str})  # types that may stand as a key on their own


def make_key(args: tuple[Any, ...], kwargs: dict[str, Any], typed: bool) -> Hashable:
    """A key for a call of a function with *args or **kwargs."""
    if not kwargs and len(args) == 1 and not typed and type(args[0]) in _SELF_KEYED:
        single: Hashable = args[0]
        return single
    key: tuple[Any, ...] = args
    if kwargs:
        items = sorted(kwargs.items())
        key += (_KWARGS_MARK, *(part for item in items for part in item))
        if typed:
            key += tuple(type(v) for v in args) + tuple(type(v) for _, v in items)
    elif typed:
        key += tuple(type(v) for v in args)
    return key


def has_fixed_signature(func: Callable[..., Any]) -> bool:
    """True when every parameter has a name (no *args, no **kwargs)."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return all(p.kind not in variadic for p in inspect.signature(func).parameters.values())


def fixed_key_source(params: list[inspect.Parameter], typed: bool) -> str:
    """Python source of the key expression over a fixed signature's parameter names."""
    names = [p.name for p in params]
    if typed:
        names += [f"type({p.name})" for p in params]
    elif len(names) == 1:
        return names[0]
    return "(" + "".join(f"{n}, " for n in names) + ")"
