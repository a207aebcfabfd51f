"""The fingerprint of a run: what it depends on, as sha256 hashes (torch-free).

A run records, in ``config.json`` (key ``fingerprint``) and in its checkpoint,

- ``config``: the sha256 of its resolved configuration (the configuration
  fields of ``config.json`` as canonical JSON: sorted keys, no spaces);
- ``data``: the sha256 of its data: of the data file's bytes for a user file
  (``kind: "file"``, with its ``path``), or of the built-in set's name and
  resolved options (``kind: "builtin"``, with ``name`` and ``params``: the
  built-in sets are generated from them).

``--resume`` and ``vaelik evaluate`` compare them with what they are about to
use and refuse a mismatch with one line naming what changed
(:func:`config_problem`, :func:`data_problem`). A run written before
fingerprints existed has none; it resumes and evaluates as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from typing import Any

from vaelik.errors import InputError

__all__ = [
    "FINGERPRINT_KEY",
    "builtin_fingerprint",
    "config_diff",
    "config_problem",
    "config_sha256",
    "data_problem",
    "file_fingerprint",
    "file_sha256",
    "recorded",
]

#: the key of ``config.json`` (and of the checkpoint) holding the fingerprint
FINGERPRINT_KEY = "fingerprint"
#: bytes read at a time when hashing a data file
_CHUNK = 1 << 20
#: how many changed fields a message names
_NAMED = 3


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def config_sha256(fields: Mapping[str, Any]) -> str:
    """The sha256 of a configuration's fields as canonical JSON (sorted keys, no spaces).

    >>> config_sha256({"b": 1, "a": 0.5}) == config_sha256({"a": 0.5, "b": 1})
    True
    """
    return hashlib.sha256(_canonical(dict(fields))).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a regular file's bytes, read in chunks.

    Raises
    ------
    InputError
        ``path`` is not a regular file (a folder, a FIFO, a device) or cannot be read.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"data path {path} is not a regular file; give a .npy, .npz or "
                             "IDX file")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise InputError(f"cannot read data file {path} ({e.strerror or type(e).__name__})") \
            from None
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """The data fingerprint of a user file: ``{"kind": "file", "path", "sha256"}``."""
    return {"kind": "file", "path": os.fspath(path), "sha256": file_sha256(path)}


def builtin_fingerprint(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The data fingerprint of a built-in set: its name and resolved options, and their sha256."""
    params = json.loads(_canonical(dict(params)))
    return {"kind": "builtin", "name": name, "params": params,
            "sha256": hashlib.sha256(_canonical({"name": name, "params": params})).hexdigest()}


def recorded(*records: Any) -> list[dict[str, Any]]:
    """The fingerprints found in ``records`` (``config.json``'s dict, a checkpoint's JSON text).

    Anything that is not a fingerprint (absent, of another type, unparseable) is
    left out: a run without one is checked as before fingerprints existed.
    """
    found = []
    for record in records:
        if isinstance(record, str):
            try:
                record = {FINGERPRINT_KEY: json.loads(record)}
            except ValueError:
                continue
        value = record.get(FINGERPRINT_KEY) if isinstance(record, Mapping) else None
        if isinstance(value, Mapping):
            found.append(dict(value))
    return found


def _short(text: str) -> str:
    return f"{text[:12]}…"


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def config_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The changed fields as ``key old -> new`` (the first few, in the order of ``after``), '' if none.

    >>> config_diff({"likelihood": "normal", "lr": 0.1}, {"likelihood": "laplace", "lr": 0.1})
    'likelihood normal -> laplace'
    """
    changed = [k for k in dict.fromkeys([*after, *before]) if before.get(k) != after.get(k)]
    parts = [f"{k} {_value(before.get(k))} -> {_value(after.get(k))}" for k in changed[:_NAMED]]
    if len(changed) > _NAMED:
        parts.append(f"and {len(changed) - _NAMED} more")
    return ", ".join(parts)


def config_problem(run_dir: str | os.PathLike, stored: Mapping[str, Any],
                   resolved: Mapping[str, Any], started: Mapping[str, Any] | None,
                   fingerprints: list[dict[str, Any]]) -> str | None:
    """Why ``config.json`` is not the configuration the run started with (None if it is).

    Parameters
    ----------
    run_dir : path-like
        The run directory (for the message).
    stored : mapping
        The configuration fields as ``config.json`` stores them now (what the
        recorded ``config`` hash was taken over).
    resolved : mapping
        The same, resolved (fields a record lacks at the value of the vaelik that
        wrote it), as compared with ``started``.
    started : mapping or None
        The configuration the checkpoint was written with (resolved the same
        way), None when there is none to compare.
    fingerprints : list of dict
        The recorded fingerprints (:func:`recorded`).
    """
    if started is not None:
        diff = config_diff(started, resolved)
        if diff:
            return (f"config.json of {run_dir} was edited since the run started: {diff} (the "
                    "checkpoint was written by another configuration); put the original values "
                    "back, or train a new run with --out")
    now = config_sha256(stored)
    for fingerprint in fingerprints:
        then = fingerprint.get("config")
        if isinstance(then, str) and then != now:
            return (f"config.json of {run_dir} was edited since the run started (its "
                    f"configuration hashes to sha256 {_short(now)}, the run started with "
                    f"{_short(then)}); put the original file back, or train a new run with --out")
    return None


def data_problem(now: Mapping[str, Any], fingerprints: list[dict[str, Any]]) -> str | None:
    """Why the data about to be used is not the data the run started with (None if it is)."""
    for fingerprint in fingerprints:
        data = fingerprint.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("sha256"), str):
            continue
        if data["sha256"] == now["sha256"]:
            continue
        then = _short(data["sha256"])
        if now.get("kind") == "file":
            return (f"the data file {now['path']} changed since the run started (sha256 {then} "
                    f"then, {_short(now['sha256'])} now); put the original file back, or train "
                    "a new run with --out")
        return (f"the built-in data {now.get('name')!r} with options "
                f"{_value(now.get('params', {}))} is not what the run started with (sha256 "
                f"{then} then, {_short(now['sha256'])} now; recorded options "
                f"{_value(data.get('params', {}))}); train a new run with --out")
    return None
