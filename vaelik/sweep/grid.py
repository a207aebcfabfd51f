"""Sweep grids: the TOML file, its expansion into configurations, and run names.

A grid file names fixed values at the top level, the values to cross in a
``[grid]`` table and, optionally, explicit extra configurations in ``[[extra]]``
tables (see ``docs/sweeps.md``). :func:`expand` turns it into a list of
:class:`SweepRun` (each a full :class:`~vaelik.inference.TrainConfig` and a
stable, path-safe run name). Running them is :func:`vaelik.sweep.run_sweep`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelik.config import GRID_KEYS, RUN_NAME_PREFIXES
from vaelik.errors import InputError
from vaelik.inference.config import TrainConfig
from vaelik.rundir import MAX_RUN_NAME, safe_run_name

__all__ = [
    "GRID_KEYS",
    "Expansion",
    "Grid",
    "SweepRun",
    "check_run",
    "config_hash",
    "expand",
    "grid_from_dict",
    "grid_to_toml",
    "load_grid",
]

#: the longest run name (before the hash suffix a collision may add)
MAX_NAME = MAX_RUN_NAME

# GRID_KEYS (keys a grid file may set: every TrainConfig field but ``name``) and the
# run-name prefixes are declared with the fields in vaelik.config
_DEFAULTS = TrainConfig().to_dict()
#: short prefixes of values in run names (``z8``, ``s0``), declared with each field; others
#: show the value only
_PREFIX = RUN_NAME_PREFIXES

# ----------------------------------------------------------------------------------------
# The grid file


@dataclass
class Grid:
    """A parsed grid file.

    Attributes
    ----------
    base : dict
        Values shared by every configuration (the file's top-level keys).
    axes : dict of str to list
        The ``[grid]`` table: every combination of these values is one configuration.
    extra : list of dict
        The ``[[extra]]`` tables: explicit configurations (over ``base``) added as they are.
    text : str or None
        The file's text, copied into the sweep folder as ``grid.toml``.
    """

    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None


@dataclass(frozen=True)
class SweepRun:
    """One configuration of a sweep: its run name and full configuration."""

    name: str
    config: dict[str, Any]  #: TrainConfig fields (``name`` included)

    def train_config(self) -> TrainConfig:
        """The run's :class:`TrainConfig`, built from ``config``."""
        return TrainConfig.from_dict(self.config)


@dataclass
class Expansion:
    """What a grid expands to: the runs, the keys that vary, and notes for the user."""

    runs: list[SweepRun]
    varying: list[str]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)


def _key(name: str, where: str) -> str:
    key = name.replace("-", "_")
    if key not in GRID_KEYS:
        raise InputError(
            f"unknown key {name!r} in {where}; valid keys: {', '.join(GRID_KEYS)} "
            "(plus the tables [grid] and [[extra]])"
        )
    return key


def grid_from_dict(raw: dict[str, Any], text: str | None = None, source: str = "grid file") -> Grid:
    """Build a :class:`Grid` from the parsed TOML (or an equivalent dict).

    Raises
    ------
    InputError
        Unknown keys (the message lists the valid ones), a ``[grid]`` value that
        is an empty list, or nothing to run (no ``[grid]`` and no ``[[extra]]``).
    """
    grid = Grid(text=text)
    for name, value in raw.items():
        if name == "grid":
            if not isinstance(value, dict):
                raise InputError(f"'grid' in {source} must be a table ([grid]), got {value!r}")
            for axis, values in value.items():
                key = _key(axis, f"{source} [grid]")
                values = values if isinstance(values, list) else [values]
                if not values:
                    raise InputError(f"[grid] {axis} in {source} is an empty list; give at least one value")
                grid.axes[key] = values
        elif name == "extra":
            tables = value if isinstance(value, list) else [value]
            for i, table in enumerate(tables):
                if not isinstance(table, dict):
                    raise InputError(f"[[extra]] number {i + 1} in {source} is not a table")
                grid.extra.append({_key(k, f"{source} [[extra]]"): v for k, v in table.items()})
        else:
            grid.base[_key(name, source)] = value
    if not grid.axes and not grid.extra:
        raise InputError(f"{source} has no [grid] values and no [[extra]] configurations: nothing to run")
    return grid


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check a grid file (TOML).

    Raises
    ------
    InputError
        Missing or unreadable file, invalid TOML, unknown keys, an empty grid.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None  # reported by the read below
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        # a FIFO would block for ever, a device never end
        raise InputError(f"grid file {path} is not a regular file; give a TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"grid file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read grid file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"grid file {path} is not valid TOML: {e}") from None
    return grid_from_dict(raw, text=text, source=str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise InputError(f"cannot write {value!r} to a grid file")


def grid_to_toml(grid: Grid) -> str:
    """The grid as TOML text (used for grids built in Python, e.g. by ``vaelik demo``)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in grid.base.items() if v is not None]
    lines += ["", "[grid]"] + [f"{k} = {_toml_value(v)}" for k, v in grid.axes.items()]
    for table in grid.extra:
        lines += ["", "[[extra]]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()
                                      if v is not None]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Expansion and names


def _has_scale(likelihood: Any) -> bool:
    """Whether a likelihood family takes a scale (unknown names: assume yes, fail at run time)."""
    from vaelik.models import LocationScaleLikelihood, get_likelihood

    try:
        return isinstance(get_likelihood(str(likelihood)), LocationScaleLikelihood)
    except Exception:  # noqa: BLE001 - an unknown name is reported when that run starts
        return True


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    scale = values.get("scale")
    if isinstance(scale, int) and not isinstance(scale, bool):
        values["scale"] = float(scale)
    elif isinstance(scale, str):
        try:
            values["scale"] = float(scale)
        except ValueError:
            pass
    return values


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, dict):
        return "_".join(f"{k}{_fmt(v)}" for k, v in sorted(value.items()))
    return str(value)


def _token(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key == "data" and isinstance(value, str):
        value = Path(value).stem or value
    return _PREFIX.get(key, "") + _fmt(value)


def config_hash(config: dict[str, Any], n: int = 6) -> str:
    """Short stable hash of a configuration (``name`` excluded)."""
    payload = _canonical({k: v for k, v in config.items() if k != "name"})
    return hashlib.sha1(payload.encode()).hexdigest()[:n]


def expand(grid: Grid) -> Expansion:
    """All configurations of ``grid`` with their run names.

    The ``[grid]`` axes are crossed (in the order written) and the ``[[extra]]``
    configurations appended, each over the top-level values. A family without a
    scale (``bernoulli``, ``cbernoulli``) ignores the scale axis: its copies are
    deduplicated and a note says so. Names are built from the keys whose value
    differs between configurations, in a fixed order, plus the seed, e.g.
    ``normal-learned-z8-s0`` (a key set only by ``[[extra]]`` tables appears only in
    the names of the runs that change it: ``normal-learned-linear-s0``); a collision
    (or an over-long name) gets a short hash of the configuration appended.
    """
    combos: list[dict[str, Any]] = []
    keys = list(grid.axes)
    for values in itertools.product(*(grid.axes[k] for k in keys)):
        combos.append({**grid.base, **dict(zip(keys, values, strict=False))})
    combos += [{**grid.base, **e} for e in grid.extra]

    notes: list[str] = []
    dropped: dict[str, int] = {}
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for values in combos:
        values = _normalise(values)
        if values.get("scale") is not None and not _has_scale(values.get("likelihood", "normal")):
            values["scale"] = None
            dropped.setdefault(str(values["likelihood"]), 0)
        config = {**_DEFAULTS, **values}
        canon = _canonical(config)
        if canon in seen:
            if values.get("likelihood") in dropped:
                dropped[str(values["likelihood"])] += 1
            continue
        seen.add(canon)
        configs.append(config)
    if dropped:
        n = sum(dropped.values())
        names = sorted(dropped)
        verb = "has" if len(names) == 1 else "have"
        notes.append(f"{', '.join(names)} {verb} no scale: the scale axis is ignored for "
                     f"{'it' if len(names) == 1 else 'them'} ({n} duplicate "
                     f"configuration{'s' * (n != 1)} dropped)")

    varying = [k for k in GRID_KEYS
               if len({_canonical(c.get(k)) for c in configs}) > 1 and k != "seed"] + ["seed"]
    # A key of the [grid] table is named in every run; a key that varies only through
    # [[extra]] tables is named only in the runs that set it away from the shared value,
    # so that adding an extra configuration never renames the grid's runs.
    shared = {**_DEFAULTS, **{k: v for k, v in _normalise(grid.base).items()}}
    names = []
    for config in configs:
        tokens = [t for k in varying
                  if (k in grid.axes or k == "seed"
                      or _canonical(config.get(k)) != _canonical(shared.get(k)))
                  and (t := _token(k, config.get(k))) is not None]
        names.append(safe_run_name("-".join(tokens), MAX_NAME))
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    runs = []
    for name, config in zip(names, configs, strict=False):
        if counts[name] > 1 or len(name) >= MAX_NAME:
            name = f"{name[: MAX_NAME - 7]}-{config_hash(config)}"
        runs.append(SweepRun(name=name, config={**config, "name": name}))
    return Expansion(runs=runs, varying=varying, notes=notes)


def check_run(run: SweepRun) -> str | None:
    """The reason ``run`` cannot start (bad option), or None; used by ``--dry-run``."""
    from vaelik.models import get_likelihood

    try:
        config = run.train_config().check()
        get_likelihood(config.likelihood, **config.likelihood_kwargs())
    except InputError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - e.g. a wrongly typed value
        return f"{type(e).__name__}: {e}"
    return None
