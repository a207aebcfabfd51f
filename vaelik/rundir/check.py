"""Type checks of a run's JSON records against their declarations (torch-free).

A file of a run directory may hold anything: a user's edit, another program's
output, a half-written disk block. Readers check what they read against the
declared types before they use it, and turn each mismatch into one line.
The declarations are Python type hints: :class:`~vaelik.rundir.schema.EvalRecord`
for ``eval.json``, the fields of :class:`vaelik.config.TrainConfig` for
``config.json`` (passed in by the caller; this package does not import the
configuration).

JSON has no NaN: a number that could not be computed is ``null``, so a ``float``
accepts ``null`` too (``docs/run-directory.md``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from vaelik.rundir.schema import EvalRecord

__all__ = ["EVAL_TYPES", "eval_problems", "json_type_problems", "type_problem"]

#: the most problems one record reports (the first ones say enough)
MAX_PROBLEMS = 5


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    return f"{kind} ({text})" if value is not None else kind


def _strip(hint: Any) -> Any:
    """``NotRequired[X]`` / ``Required[X]`` -> ``X``."""
    while typing.get_origin(hint) in (typing.NotRequired, typing.Required):
        hint = typing.get_args(hint)[0]
    return hint


def _accepts(hint: Any, value: Any) -> bool:
    hint = _strip(hint)
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(h, value) for h in typing.get_args(hint))
    if hint is float:  # JSON has no NaN: null stands for a number that could not be computed
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin is list or hint is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_accepts(args[0], v) for v in value))
    if origin is dict or hint is dict:
        args = typing.get_args(hint)
        return isinstance(value, dict) and (not args or all(_accepts(args[1], v) for v in value.values()))
    if typing.is_typeddict(hint):
        return isinstance(value, dict) and not json_type_problems(value, typing.get_type_hints(hint))
    return isinstance(hint, type) and isinstance(value, hint)


def _expected(hint: Any) -> str:
    hint = _strip(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [_expected(h) for h in typing.get_args(hint)]
        return " or ".join(dict.fromkeys(parts))
    if hint is None or hint is type(None):
        return "null"
    if hint is float:
        return "a number"
    if typing.is_typeddict(hint) or typing.get_origin(hint) is dict or hint is dict:
        return "an object"
    if typing.get_origin(hint) is list or hint is list:
        return "a list"
    return {int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))


def type_problem(key: str, hint: Any, value: Any) -> str | None:
    """One line saying why ``value`` is not of type ``hint`` (None when it is).

    Examples
    --------
    >>> type_problem("epochs", int, "3")
    "epochs is a string ('3'), expected an integer"
    >>> type_problem("scale", float | None, None) is None
    True
    """
    if _accepts(hint, value):
        return None
    inner = _strip(hint)
    if typing.is_typeddict(inner) and isinstance(value, dict):  # name the nested key
        return f"{key}.{json_type_problems(value, typing.get_type_hints(inner))[0]}"
    return f"{key} is {_describe(value)}, expected {_expected(hint)}"


def json_type_problems(record: Any, hints: Mapping[str, Any]) -> list[str]:
    """The keys of a JSON object whose values are not of their declared type.

    Parameters
    ----------
    record : object
        What ``json.load`` returned.
    hints : mapping of str to type
        Declared type per key (``typing.get_type_hints`` of a TypedDict or a
        dataclass). Keys the record lacks and keys without a hint are not problems.

    Returns
    -------
    list of str
        At most :data:`MAX_PROBLEMS` one-line problems; empty when every value fits.
    """
    if not isinstance(record, dict):
        return [f"the file holds {_describe(record)}, expected an object"]
    problems = []
    for key, hint in hints.items():
        if key in record:
            problem = type_problem(key, hint, record[key])
            if problem:
                problems.append(problem)
                if len(problems) == MAX_PROBLEMS:
                    break
    return problems


def eval_problems(record: Any) -> list[str]:
    """:func:`json_type_problems` of an ``eval.json`` against :class:`EvalRecord`."""
    return json_type_problems(record, EVAL_TYPES)


#: the declared type of every ``eval.json`` key (``NotRequired`` stripped)
EVAL_TYPES: dict[str, Any] = typing.get_type_hints(EvalRecord)
