"""Validation of configuration: early, with the parameter's name and value in the message."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, TypeAlias

#: A duration: seconds as a number, or a `datetime.timedelta`.
Seconds: TypeAlias = float | timedelta


def check_seconds(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    """A duration in seconds: a real number >= 0 or a `timedelta` (or None where allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, a timedelta or None, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int past the largest float
        raise ValueError(
            f"{name} is too large a number of seconds (None means no limit), got {value!r:.40}"
        ) from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, got {value!r}")
    return seconds


def check_maxsize(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"maxsize must be an int > 0 or None, got {value!r}")
    if value <= 0:
        raise ValueError(f"maxsize must be > 0 or None, got {value!r}")
    return value


def check_exception_types(name: str, value: Any) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{name} must be a tuple of exception types, got {value!r}")
    return types


def check_fraction(name: str, value: Any) -> float:
    """A fraction in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if math.isnan(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """A flag: True or False, nothing merely truthy ("no" is not False)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value
