"""Argument checks: one function per check, one message each.

Every message names the argument, the bad value and what would be accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from vaelik.errors import InputError


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`InputError`."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (not a bool, NaN or inf)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return number


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_fraction(name: str, value: Any) -> float:
    """Return ``value`` if it is a number strictly between 0 and 1."""
    number = check_positive(name, value)
    if number >= 1:
        raise InputError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return number
