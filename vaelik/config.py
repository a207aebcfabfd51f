"""The training configuration, each field declared once (torch-free).

A field of :class:`TrainConfig` carries its whole story in one :class:`Option`:
its help text, its ``vaelik train`` flag and argument group, how the flag's
text is parsed, its check (from :mod:`vaelik.validate`), its choices (the keys
of a registry mapping, read when first needed), whether it defines the
configuration (refused together with ``--resume``), its token in sweep run
names and its column in the report's tables. Everything else is derived:

* ``vaelik train``'s flags, ``--resume``'s refusal list and the configuration
  built from the flags (:mod:`vaelik.cli`);
* the keys of a grid file and the run-name prefixes (:data:`GRID_KEYS`,
  :data:`RUN_NAME_PREFIXES`);
* the configuration columns of the report (:mod:`vaelik.analysis.runs`);
* :meth:`TrainConfig.check`, which loops over the declarations.

This module imports neither torch nor the training code (the analysis layer
reads it); the registries live beside what they build and are imported only
when their names are needed (a check, a help text). It is about 400 lines
because half of it is the declaration itself, one entry per field.

Adding a field is one entry here, e.g.::

    warmup: int = option(0, group="training", check=_int_at_least(0), token="w",
                         help="epochs of KL warm-up")
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vaelik.errors import InputError
from vaelik.validate import (
    check_choice,
    check_device,
    check_fraction,
    check_int,
    check_options,
    check_positive,
    check_text,
)

__all__ = [
    "ABSENT",
    "FIELDS",
    "GRID_KEYS",
    "RUN_NAME_PREFIXES",
    "Option",
    "Registry",
    "TrainConfig",
    "option",
    "parse_key_value",
    "parse_scale",
]

#: seeds go to torch, numpy and Python's random; numpy accepts 0 <= seed < 2**32
SEED_LIMIT = 2**32


# ----------------------------------------------------------------------------------------
# The declaration's vocabulary

#: ``Option.absent`` of a field whose absence from a stored configuration means its default
ABSENT = "<default>"


@dataclass(frozen=True)
class Registry:
    """Names of a registry mapping that lives in a module importing torch.

    ``module:attr`` is a mapping (its keys are the names) or a function
    returning the names; it is imported only when :meth:`names` is called.
    """

    module: str
    attr: str

    def names(self) -> list[str]:
        """The registered names, in the registry's order."""
        value = getattr(importlib.import_module(self.module), self.attr)
        return list(value() if callable(value) else value)


@dataclass(frozen=True)
class Option:
    """What is known about one :class:`TrainConfig` field.

    Attributes
    ----------
    help : str
        One line for ``vaelik train --help``; ``{choices}`` is replaced by the
        registry's names.
    group : str or None
        Argument group of ``vaelik train --help`` (``data``, ``model``,
        ``training``); None: the command's own options.
    flag : str
        The ``vaelik train`` flag; derived from the field name (``--latent-dim``)
        unless given (``--data-opt``).
    no_flag : str
        Why the field has no flag (empty: it has one).
    parse : callable or None
        Turns the flag's text into the value (argparse ``type``); None keeps the text.
    repeat : bool
        A ``KEY=VALUE`` flag given once per key, collected into a dict.
    metavar : str or None
        The flag's placeholder in the help.
    check : callable or None
        ``check(label, value)`` raises :class:`~vaelik.errors.InputError` naming
        the label, the value and what is accepted. None with ``choices``: the
        value must be one of them; None without: checked where it is used (said
        in ``checked_by``).
    checked_by : str
        Where a field without a check here is checked.
    choices : Registry or None
        The registry whose names are the accepted values (listed in the help).
    open_choices : bool
        The choices are suggestions, not the only values (``data`` also takes a path).
    normalise : callable or None
        Maps a value to its canonical spelling before the check.
    defines : bool
        Part of what defines a run: refused together with ``--resume``.
    no_grid : str
        Why the field is not a grid-file key (empty: it is one).
    token : str
        Prefix of the field's value in sweep run names (``z`` gives ``z8``).
    column : str or None
        Column of the report's run table holding the field (None: not shown).
    key_column : bool
        Also joined onto every metrics row (:data:`vaelik.analysis.runs.CONFIG_COLUMNS`).
    absent : object
        What a stored configuration (``config.json``, a checkpoint) that lacks the
        field means: the behaviour of the vaelik that wrote it, before the field
        existed (:data:`ABSENT`: the default).
    name : str
        The field name (filled in from the dataclass).
    default : object
        The field's default (filled in from the dataclass).
    """

    help: str
    group: str | None = None
    flag: str = ""
    no_flag: str = ""
    parse: Callable[[str], Any] | None = None
    repeat: bool = False
    metavar: str | None = None
    check: Callable[[str, Any], Any] | None = None
    checked_by: str = ""
    choices: Registry | None = None
    open_choices: bool = False
    normalise: Callable[[Any], Any] | None = None
    defines: bool = True
    no_grid: str = ""
    token: str = ""
    column: str | None = None
    key_column: bool = False
    absent: Any = ABSENT
    name: str = ""
    default: Any = None

    @property
    def label(self) -> str:
        """How messages name the field: its flag without dashes (``latent-dim``)."""
        return self.flag[2:] if self.flag else self.name.replace("_", "-")

    def help_text(self) -> str:
        """The help line with the registry's names filled in."""
        if self.choices is None:
            return self.help
        return self.help.format(choices=", ".join(self.choices.names()))

    def validate(self, value: Any) -> None:
        """Raise :class:`~vaelik.errors.InputError` if ``value`` is not accepted."""
        if self.check is not None:
            self.check(self.label, value)
        elif self.choices is not None and not self.open_choices:
            check_choice(self.label, value, self.choices.names())


def option(default: Any = None, *, factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A dataclass field with its :class:`Option` (``spec``) in the metadata."""
    metadata = {"vaelik": Option(**spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_scale(text: str) -> float | str:
    """``--scale`` text: a number (a fixed scale) or a scale mode."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` text: the value as an int, else a float, else the text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    return key.strip(), value


def _int_at_least(minimum: int, below: int | None = None) -> Callable[[str, Any], int]:
    def check(label: str, value: Any) -> int:
        return check_int(label, value, minimum, below)

    return check


#: K of the importance-sampled log p(x) stays below this: the estimate's time grows linearly in K
#: (K = 1000 on 10,000 Fashion-MNIST images took 6 minutes on one core); a K of 10^12 was
#: accepted and never finished
IWAE_SAMPLES_BELOW = 10**6 + 1


def _int_below(minimum: int, limit: int) -> Callable[[str, Any], int]:
    def check(label: str, value: Any) -> int:
        return check_int(label, value, minimum, limit)

    return check


def _text(label: str, value: Any) -> None:
    check_text(label, value)


def _text_or_none(label: str, value: Any) -> None:
    check_text(label, value, optional=True)


def _scale_value(label: str, value: Any) -> None:
    """A scale is None, a mode name or a number; the family checks the value itself."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{label} must be a positive number (a fixed scale) or a scale mode "
                         f"name, got {value!r}")
    check_positive(label, value)


def _plain(value: Any) -> Any:
    """A numpy scalar or a path as the Python value ``config.json`` stores (others unchanged)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy.int64, ...; a numpy bool is not Integral
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _positive_or_none(label: str, value: Any) -> None:
    if value is not None:
        check_positive(label, value)


def _folder_or_none(label: str, value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise InputError(f"{label} must be a folder path, got {value!r}")


#: the ``--dequantise`` choices (:mod:`vaelik.inference.data.dequantise`)
DEQUANTISE_CHOICES = ("auto", "none")


def _dequantise_choice(label: str, value: Any) -> None:
    check_choice(label, value, DEQUANTISE_CHOICES)


def _fraction_or_zero(label: str, value: Any) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and (value == 0 or 0 < value < 1)):
        raise InputError(f"{label} must be 0 (none) or a number between 0 and 1 (exclusive), "
                         f"got {value!r}")


# ----------------------------------------------------------------------------------------
# Likelihood names: THE one place a likelihood name is validated. (It will resolve
# ``module:Class`` names and entry points through ``vaelik.models.likelihood_class``.)


def _likelihood_spelling(value: Any) -> Any:
    """``"Normal"`` means ``"normal"``: a known name in other capitals is lowered."""
    from vaelik.models import likelihood_names

    names = likelihood_names()
    if isinstance(value, str) and value not in names and value.lower() in names:
        return value.lower()
    return value


def _check_likelihood(label: str, value: Any) -> None:
    # the family resolves the name (registered, ``module:Class`` or entry point) and says
    # in one line what it knows when it cannot
    from vaelik.models import likelihood_class

    likelihood_class(value)


#: a likelihood's initial scale when --init-scale is not set, until the data's spread replaces it
_UNSET_INIT_SCALE = 1.0

#: option keys that are fields of their own (a likelihood option may not set them)
_LIKELIHOOD_FIELDS = {"scale": "--scale", "min_scale": "--min-scale", "init_scale": "--init-scale"}


def _check_likelihood_options(label: str, value: Any) -> None:
    check_options(label, value)
    for key in value:
        if key in _LIKELIHOOD_FIELDS:
            raise InputError(f"{label} {key} is a setting of its own; use "
                             f"{_LIKELIHOOD_FIELDS[key]} instead")


# ----------------------------------------------------------------------------------------
# The registries whose keys are the choices

DATASETS = Registry("vaelik.inference.data", "BUILTIN_DATA")
LIKELIHOODS = Registry("vaelik.models", "likelihood_names")
SCALE_MODES = Registry("vaelik.models", "SCALE_MODES")
MODELS = Registry("vaelik.models", "MODELS")
NETWORKS = Registry("vaelik.models", "NETWORKS")
ELBOS = Registry("vaelik.inference.elbo", "ELBOS")
OPTIMIZERS = Registry("vaelik.inference.optimizers", "OPTIMIZERS")
LR_SCHEDULES = Registry("vaelik.inference.schedules", "LR_SCHEDULES")
DATA_INITS = Registry("vaelik.models", "DATA_INITS")


# ----------------------------------------------------------------------------------------
# The configuration


@dataclass
class TrainConfig:
    """Everything that defines a run; each field is declared once, with its :class:`Option`.

    Field names are the ``vaelik train`` flags with ``-`` for ``_`` (except
    ``data_options``: ``--data-opt``, ``likelihood_options``: ``--lik-opt``) and
    the keys of a grid file. The fields, their defaults and meaning are listed
    under Attributes (generated from the declaration).
    """

    data: str = option(
        "digits", group="data", choices=DATASETS, open_choices=True, check=_text,
        checked_by="vaelik.inference.load_data (a built-in name or a file path)",
        help="a built-in data set ({choices}) or a .npy/.npz/IDX file",
        column="data", key_column=True)
    likelihood: str = option(
        "normal", group="model", choices=LIKELIHOODS, normalise=_likelihood_spelling,
        check=_check_likelihood,
        help="observation likelihood: {choices} (or a registered subclass)",
        column="likelihood", key_column=True)
    likelihood_options: dict[str, Any] = option(  # noqa: RUF009 - a field(), with metadata
        factory=dict, group="model", flag="--lik-opt", repeat=True, metavar="KEY=VALUE",
        parse=parse_key_value, check=_check_likelihood_options,
        help="option of the likelihood family, e.g. df=4 for a Student-t (repeatable)",
        column="likelihood_options")
    scale: float | str | None = option(
        None, group="model", parse=parse_scale, choices=SCALE_MODES, open_choices=True,
        check=_scale_value, checked_by="the likelihood family (vaelik.models.get_likelihood)",
        help="a positive number (fixed) or a scale mode: {choices} (default: the family's)",
        column="scale", key_column=True)
    model: str = option(
        "vae", group="model", choices=MODELS, help="model: {choices}",
        column="model", key_column=True)
    network: str = option(
        "mlp", group="model", choices=NETWORKS, absent="mlp",
        help="encoder/decoder networks: {choices} (conv: strided convolutions, for images "
             "whose height and width are multiples of 4, at least 8; --hidden-dim is the "
             "channels of its deepest block)",
        column="network")
    latent_dim: int = option(
        8, group="model", parse=int, check=_int_at_least(1), token="z",
        help="dimension of the latent z", column="latent_dim", key_column=True)
    hidden_dim: int = option(
        256, group="model", parse=int, check=_int_at_least(0), token="h",
        help="width of the hidden layer of encoder and decoder (0: none)", column="hidden_dim")
    data_init: str = option(
        "standardise", group="model", choices=DATA_INITS, absent="none",
        help="how the networks start from the training data: {choices} (standardise: the "
             "encoder sees standardised inputs, the decoder starts at the mean)",
        column="data_init")
    epochs: int = option(
        500, group="training", parse=int, check=_int_at_least(1), token="e",
        help="the most passes over the training set (early stopping may end sooner)",
        column="epochs")
    patience: int = option(
        20, group="training", parse=int, check=_int_at_least(0), token="pat", absent=0,
        help="stop after this many epochs in a row without a better (moving average of the) "
             "validation ELBO; plateau halves the rate after half as many (0: run every epoch)",
        column="patience")
    lr_schedule: str = option(
        "plateau", group="training", choices=LR_SCHEDULES, absent="none",
        help="learning-rate schedule: {choices} (plateau: halve after --patience/2 epochs of a "
             "flat validation ELBO; "
             "cosine: anneal to 0 over --epochs)",
        column="lr_schedule")
    batch_size: int = option(
        128, group="training", parse=int, check=_int_at_least(1), token="b",
        help="examples per SVI step", column="batch_size")
    lr: float = option(
        3e-3, group="training", parse=float, check=check_positive, token="lr",
        help="learning rate", column="lr")
    optimizer: str = option(
        "adam", group="training", choices=OPTIMIZERS,
        help="one optimiser over all parameters: {choices}")
    scale_lr_factor: float = option(
        10.0, group="training", parse=float, check=check_positive, token="slr", absent=1.0,
        help="learning rate of the likelihood's scale parameters (learned σ or b, per-dimension "
             "scales, the Bayesian scale's posterior) as a multiple of --lr; 1: the same rate",
        column="scale_lr_factor")
    elbo: str = option(
        "jit-meanfield", group="training", choices=ELBOS,
        help="ELBO estimator: {choices}; jit-meanfield has the gradients of meanfield, faster",
        column="elbo_estimator")
    seed: int = option(
        0, group="training", parse=int, check=_int_below(0, SEED_LIMIT), token="s",
        help="seed of the split, the initialisation and the training (0 to 2**32 - 1)",
        column="seed",
        key_column=True)
    device: str = option(
        "cpu", group="training", check=check_device, help="cpu or cuda[:N]")
    test_fraction: float = option(
        0.2, group="data", parse=float, check=check_fraction, token="test",
        help="fraction of the data held out as the test split")
    val_fraction: float = option(
        0.1, group="data", parse=float, check=_fraction_or_zero, token="val", absent=0.0,
        help="fraction of the data taken from the training rows as the validation split "
             "(early stopping, best epoch; 0: none)")
    min_scale: float = option(
        1e-3, group="model", parse=float, check=check_positive, token="min",
        help="lower bound of learned scales", column="min_scale")
    init_scale: float | None = option(
        None, group="model", parse=float, check=_positive_or_none, token="init",
        help="initial learned scale (default: the data's spread around its mean)")
    iwae_samples: int = option(
        1000, group="training", parse=int, check=_int_at_least(1, IWAE_SAMPLES_BELOW), token="k",
        help="K of the final importance-sampled log p(x) (at most 1,000,000)")
    data_key: str | None = option(
        None, group="data", token="key", check=_text_or_none,
        checked_by="vaelik.inference.load_data",
        help="array name inside a .npz with several")
    data_options: dict[str, Any] = option(  # noqa: RUF009 - a field(), with metadata
        factory=dict, group="data", flag="--data-opt", repeat=True, metavar="KEY=VALUE",
        parse=parse_key_value, check=check_options,
        help="option of a built-in data set, e.g. sigma=0.05 (repeatable)")
    dequantise: str = option(
        "auto", group="data", check=_dequantise_choice, token="dq", absent="none",
        help="auto: a continuous density (normal, laplace, cbernoulli, ...) on data with "
             "grey levels trains and is scored on uniformly dequantised data (k + u)/L, its "
             "bits/dim a bound on the discrete log P(x); none: on the grey levels as they are",
        column="dequantise")
    data_dir: str | None = option(
        None, group="data", metavar="FOLDER", check=_folder_or_none,
        checked_by="vaelik.inference.load_data (the folder must hold the set's files)",
        help="folder holding the files of fashion-mnist, mnist or cifar10 (default: "
             "$VAELIK_DATA, then /usr/share/datasets, where apt-get install "
             "dataset-fashion-mnist puts them)")
    name: str | None = option(
        None, check=_text_or_none, checked_by="the run directory (a path-safe name)",
        no_grid="derived: from the --out folder (train) or the values that vary (sweep)",
        help="run name (default: the --out folder name)")

    def check(self) -> TrainConfig:
        """Check each field in declaration order; raise :class:`InputError` at the first bad one.

        The API gets the checks of the command line: a wrong type (``lr="0.01"``,
        ``epochs=True``), a value out of range (``seed=2**40``) or an option value
        that is not a plain number or text is refused with the one-line message
        ``vaelik train`` prints. Numpy scalars become Python numbers and a path
        becomes its text (what ``config.json`` stores). Returns ``self``.
        """
        for name, spec in FIELDS.items():
            value = _plain(getattr(self, name))
            if isinstance(value, dict):
                value = {k: _plain(v) for k, v in value.items()}
            if spec.normalise is not None:
                value = spec.normalise(value)
            setattr(self, name, value)
            spec.validate(value)
        self._check_scale_bounds()
        return self

    def _check_scale_bounds(self) -> None:
        # a learned scale starts above its floor; the message names the flags that were set
        # (without --init-scale the likelihood starts at _UNSET_INIT_SCALE until the data's
        # spread is known)
        if self.scale not in (None, "learned", "per_dim"):
            return
        if self.init_scale is not None and self.init_scale <= self.min_scale:
            raise InputError(f"--init-scale {self.init_scale:g} must be larger than --min-scale "
                             f"{self.min_scale:g}; raise --init-scale or lower --min-scale")
        if self.init_scale is None and self.min_scale >= _UNSET_INIT_SCALE:
            raise InputError(f"--min-scale {self.min_scale:g} must be below {_UNSET_INIT_SCALE:g} when "
                             "--init-scale is not set; lower --min-scale or set --init-scale above it")

    def likelihood_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`vaelik.models.get_likelihood`.

        The family options (``likelihood_options``, e.g. ``df``) and the scale
        settings that are set.
        """
        kwargs: dict[str, Any] = {**self.likelihood_options, "min_scale": self.min_scale}
        if self.init_scale is not None:
            kwargs["init_scale"] = self.init_scale
        if self.scale is not None:
            kwargs["scale"] = self.scale
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (``config.json`` adds ``data_info`` and ``versions``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring keys that are not fields (e.g. ``versions``).

        A field the dict lacks takes its default (a grid's base, a partial dict).
        """
        return cls(**{k: v for k, v in values.items() if k in FIELDS})

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a stored configuration (``config.json``, a checkpoint's).

        As :meth:`from_dict`, but a field the record lacks (written before the
        field existed) takes its ``absent`` value, the behaviour of the vaelik
        that wrote it (no validation split, no early stopping), else its default.
        """
        missing = {name: spec.absent for name, spec in FIELDS.items()
                   if name not in values and spec.absent is not ABSENT}
        return cls.from_dict({**values, **missing})


def _declared(cls: type) -> dict[str, Option]:
    fields = {}
    for f in dataclasses.fields(cls):
        if "vaelik" not in f.metadata:
            raise TypeError(f"TrainConfig.{f.name} has no Option: declare it with option(...)")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        spec = f.metadata["vaelik"]
        flag = "" if spec.no_flag else (spec.flag or "--" + f.name.replace("_", "-"))
        fields[f.name] = dataclasses.replace(spec, name=f.name, default=default, flag=flag)
    return fields


#: every field's :class:`Option`, in declaration order
FIELDS: dict[str, Option] = _declared(TrainConfig)

#: keys a grid file may set, in the order their values appear in run names
GRID_KEYS: tuple[str, ...] = tuple(name for name, spec in FIELDS.items() if not spec.no_grid)

#: prefixes of values in sweep run names (``z8``, ``s0``); other keys show the value only
RUN_NAME_PREFIXES: dict[str, str] = {name: s.token for name, s in FIELDS.items() if s.token}


def _attributes_section(fields: Iterable[Option]) -> str:
    lines = ["", "    Attributes", "    ----------"]
    for spec in fields:
        where = f"the names of {spec.choices.module}.{spec.choices.attr}" if spec.choices else ""
        lines += [f"    {spec.name} : default {spec.default!r}",
                  f"        {spec.help.replace('{choices}', where)}"]
    return "\n".join(lines) + "\n"


TrainConfig.__doc__ = (TrainConfig.__doc__ or "") + _attributes_section(FIELDS.values())
