"""Argument checks: one function per check, one message each.

Every message names the argument, the bad value and what would be accepted.
A bool is never a number here (``True`` is not an epoch count), and a string
is never a number either (``"0.01"`` from a hand-written file is refused,
not converted).
"""

from __future__ import annotations

import math
import numbers
import re
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
    "check_text",
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
    except OverflowError:  # an int beyond float's range, e.g. 10**400
        raise InputError(f"{name} must be a positive finite number, got {value!r}") from None
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return number


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[minimum, maximum)`` (not a bool, float or string).

    ``maximum`` (exclusive) is None for no upper bound.

    >>> check_int("epochs", 3, 1)
    3
    >>> check_int("epochs", 2.0, 1)
    Traceback (most recent call last):
    ...
    vaelik.errors.InputError: epochs must be an integer >= 1, got 2.0
    >>> check_int("seed", 2**32, 0, 2**32)
    Traceback (most recent call last):
    ...
    vaelik.errors.InputError: seed must be an integer from 0 to 4294967295, got 4294967296
    """
    integer = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if maximum is not None:
        if not integer or not minimum <= value < maximum:
            raise InputError(f"{name} must be an integer from {minimum} to {maximum - 1}, "
                             f"got {value!r}")
    elif not integer or value < minimum:
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


_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def check_device(name: str, value: Any) -> str:
    """Return ``value`` if it names a torch device vaelik runs on: ``cpu``, ``cuda`` or ``cuda:N``.

    Only the spelling is checked here (torch-free); whether the device exists is
    checked before a run starts (:func:`vaelik.inference.run.check_device_available`).
    """
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise InputError(f"{name} must be 'cpu' or 'cuda[:N]', got {value!r}")
    return value


def check_text(name: str, value: Any, optional: bool = False) -> str | None:
    """Return ``value`` if it is a non-empty string (or None, when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        what = "a non-empty text" + (" or none" if optional else "")
        raise InputError(f"{name} must be {what}, got {value!r}")
    return value


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, bool, int))


def check_options(name: str, value: Any) -> Mapping[str, Any]:
    """Return ``value`` if it maps option names (strings) to plain values.

    A value is a string, a bool, an integer or a finite float (what a
    ``KEY=VALUE`` flag or a grid file gives, and what ``config.json`` stores as it is).
    """
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InputError(f"{name} must be KEY=VALUE options (a table of names to values), "
                         f"got {value!r}")
    for key, item in value.items():
        if not _scalar(item):
            raise InputError(f"{name} {key} must be a number or a text, got {item!r}")
    return value
