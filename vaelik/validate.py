"""Argument checks: one function per check, one message each.

Every message names the argument, the bad value and what would be accepted.
A bool is never a number here (``True`` is not an epoch count), and a string
is never a number either (``"0.01"`` from a hand-written file is refused,
not converted).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from vaelik.errors import InputError

__all__ = [
    "check_choice",
    "check_device",
    "check_fraction",
    "check_int",
    "check_options",
    "check_positive",
    "check_positive_int",
]


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`InputError`."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (not a bool, string, NaN or inf)."""
    if isinstance(value, (bool, str, bytes)):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return number


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum`` (not a bool, float or string).

    >>> check_int("epochs", 3, 1)
    3
    >>> check_int("epochs", 2.0, 1)
    Traceback (most recent call last):
    ...
    vaelik.errors.InputError: epochs must be an integer >= 1, got 2.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1 (:func:`check_int` with minimum 1)."""
    return check_int(name, value, 1)


def check_fraction(name: str, value: Any) -> float:
    """Return ``value`` if it is a number strictly between 0 and 1."""
    number = check_positive(name, value)
    if number >= 1:
        raise InputError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return number


def check_device(name: str, value: Any) -> str:
    """Return ``value`` if it names a torch device vaelik runs on: ``cpu`` or ``cuda[:N]``."""
    if not isinstance(value, str) or not (value == "cpu" or value.startswith("cuda")):
        raise InputError(f"{name} must be 'cpu' or 'cuda[:N]', got {value!r}")
    return value


def check_options(name: str, value: Any) -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping of option names (strings) to values."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InputError(f"{name} must be KEY=VALUE options (a table of names to values), "
                         f"got {value!r}")
    return value
