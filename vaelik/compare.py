"""``vaelik compare``: which likelihood fits these images best? The standard grid, then the report.

One sweep (:mod:`vaelik.sweep`) on the given data (a built-in name or the
user's ``.npy``/``.npz``/IDX file of 8-bit images), a VAE per family and seed:

- discretised Normal, Laplace and logistic with a learned scale (exact masses on
  the data's grey levels, :mod:`vaelik.models.likelihoods.discretised`);
- Normal with a learned σ and the continuous Bernoulli, on uniformly dequantised
  data (bounds on the same masses, :mod:`vaelik.inference.data.dequantise`);
- Bernoulli on the binarised data where vaelik has them (``digits`` →
  ``digits-binary``; the image sets with ``threshold=0.5``; data that are binary
  already), ranked apart from the grey levels; skipped with a note otherwise.

Then the report (:func:`vaelik.demo.sweep_and_report`), whose first table ranks
the families in bits/dim (:mod:`vaelik.analysis.ranking`). Nothing here prints:
``vaelik compare`` shows the notes, the progress and the ranking.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vaelik.demo import DemoResult, sweep_and_report
from vaelik.errors import InputError
from vaelik.inference.data.images import IMAGE_SETS
from vaelik.sweep import Grid, SweepProgress
from vaelik.validate import check_choice, check_positive_int

__all__ = ["BINARY_THRESHOLD", "COMPARE_EPOCHS", "COMPARE_FAMILIES", "COMPARE_NETWORK_SETTINGS", "COMPARE_SETTINGS",
           "CompareResult", "binarised", "compare_grid", "run_compare"]

#: the most epochs of a run; early stopping on the validation ELBO ends most runs sooner
COMPARE_EPOCHS = 100
#: training settings shared by every run of the grid
COMPARE_SETTINGS: dict[str, Any] = {
    "model": "vae",
    "latent_dim": 16,
    "hidden_dim": 256,
    "batch_size": 128,
    "lr": 1e-3,
    "lr_schedule": "plateau",
    "patience": 10,
    "iwae_samples": 1000,
    "dequantise": "auto",
}
#: settings of one network over :data:`COMPARE_SETTINGS`. ``hidden_dim`` is the hidden layer's
#: units of the MLP but the deepest block's channels of the conv network: 64 channels (32 then
#: 64 on 28 x 28) cost about as much per step as the 256-unit MLP with its discretised
#: likelihood; 256 channels would cost 16 times as much in the middle layers (about 0.8 ms
#: per decoder pass on one CPU core against 0.17 ms), which puts a Fashion-MNIST epoch and
#: the K = 1,000 evaluation out of reach without a GPU (docs/performance.md)
COMPARE_NETWORK_SETTINGS: dict[str, dict[str, Any]] = {"mlp": {}, "conv": {"hidden_dim": 64}}
#: (likelihood, scale) of the grey-level families, in the order they are listed
COMPARE_FAMILIES: tuple[tuple[str, str | None], ...] = (
    ("dnormal", "learned"),
    ("dlaplace", "learned"),
    ("dlogistic", "learned"),
    ("normal", "learned"),
    ("cbernoulli", None),
)
#: a data set's binarised twin among the built-in sets, and the options it shares
_BINARY_TWIN = {"digits": ("digits-binary", ("n", "subset_seed"))}
#: where the image sets are binarised (value/255 > 0.5 is 1) for the Bernoulli
BINARY_THRESHOLD = 0.5


@dataclass
class CompareResult(DemoResult):
    """What :func:`run_compare` returns: :class:`~vaelik.demo.DemoResult` and the notes.

    Attributes
    ----------
    notes : list of str
        What the grid left out and why (a Bernoulli without binarised data).
    levels : int or None
        The data's number of grey levels.
    """

    notes: list[str] = field(default_factory=list)
    levels: int | None = None


def binarised(data: str, options: dict[str, Any], levels: int | None) -> tuple[str, dict[str, Any]] | None:
    """The binarised data a Bernoulli is scored on, ``(data, options)``, or None.

    ``digits`` has its twin ``digits-binary`` (the same rows, thresholded at 0.5);
    the image sets are binarised by their ``threshold`` option (0.5, the same
    images); data on two levels are binary already. Other data have no binarised
    version in vaelik.

    Examples
    --------
    >>> binarised("digits", {"n": 300}, 17)
    ('digits-binary', {'n': 300})
    >>> binarised("fashion-mnist", {"n": 5000}, 256)
    ('fashion-mnist', {'n': 5000, 'threshold': 0.5})
    >>> binarised("x.npy", {}, 2), binarised("x.npy", {}, 256)
    (('x.npy', {}), None)
    """
    if data in _BINARY_TWIN:
        twin, shared = _BINARY_TWIN[data]
        return twin, {k: v for k, v in options.items() if k in shared}
    if data in IMAGE_SETS:
        return data, {**options, "threshold": BINARY_THRESHOLD}
    if levels == 2:
        return data, dict(options)
    return None


def _data_levels(data: str, options: dict[str, Any], data_dir: str | None, key: str | None) -> int | None:
    """The data's number of grey levels (loading it: a bad file or option is an error here)."""
    from vaelik.inference.data import load_data

    return load_data(data, options=options, data_dir=data_dir, key=key, val_fraction=0.1).levels


def compare_grid(data: str, *, levels: int | None, epochs: int = COMPARE_EPOCHS, seeds: int = 1,
                 network: str = "mlp", device: str = "cpu", data_options: dict[str, Any] | None = None,
                 data_dir: str | None = None, data_key: str | None = None,
                 overrides: dict[str, Any] | None = None) -> tuple[Grid, list[str]]:
    """The grid of :func:`run_compare` (see the module docstring) and its notes.

    Returns
    -------
    grid : Grid
    notes : list of str
        Why a Bernoulli is not in the grid, when it is not.
    """
    options = dict(data_options or {})
    base = {**COMPARE_SETTINGS, **COMPARE_NETWORK_SETTINGS.get(network, {}), "data": data,
            "data_options": options, "epochs": epochs, "network": network, "device": device,
            **(overrides or {})}
    if data_dir is not None:
        base["data_dir"] = data_dir
    if data_key is not None:
        base["data_key"] = data_key
    # the learned-scale families are the grid's axis; the families without a scale are extras
    # (a scale axis over them would only be dropped again, with a note)
    learned = [lik for lik, scale in COMPARE_FAMILIES if scale == "learned"]
    base["scale"] = "learned"
    axes = {"likelihood": learned, "seed": list(range(seeds))}
    extra: list[dict[str, Any]] = [{"likelihood": lik, "scale": scale, "seed": seed}
                                   for lik, scale in COMPARE_FAMILIES if scale != "learned"
                                   for seed in range(seeds)]
    notes = []
    twin = binarised(data, options, levels)
    if twin is None:
        notes.append(f"bernoulli skipped: {data} has {levels} grey levels and no binarised version in "
                     "vaelik (a Bernoulli on grey levels is not a normalised mass); to rank one, save "
                     "your images thresholded to 0/1 as a bool or uint8 .npy and compare on that file")
    else:
        twin_data, twin_options = twin
        extra += [{"likelihood": "bernoulli", "scale": None, "data": twin_data,
                   "data_options": twin_options, "seed": seed} for seed in range(seeds)]
    return Grid(base=base, axes=axes, extra=extra), notes


def run_compare(data: str, out: str | os.PathLike = "compare", *, epochs: int | None = None,
                seeds: int = 1, jobs: int | None = None, network: str = "mlp", device: str = "cpu",
                data_options: dict[str, Any] | None = None, data_dir: str | None = None,
                data_key: str | None = None, overrides: dict[str, Any] | None = None,
                on_progress: Callable[[SweepProgress], None] | None = None) -> CompareResult:
    """Train the likelihood grid on ``data`` into ``out`` and write the report ranking them.

    Re-running continues an interrupted comparison: completed runs are kept.

    Parameters
    ----------
    data : str
        A built-in data set or a file of 8-bit (or other integer) images.
    out : path
        The sweep folder; ``report.html`` and ``report.md`` are written into it.
    epochs : int, optional
        The most epochs per run (default :data:`COMPARE_EPOCHS`).
    seeds : int
        Seeds per family (each scores the same test images: paired).
    jobs : int, optional
        Runs trained at once (default: the number of cores).
    network : {"mlp", "conv"}
        The encoder/decoder networks.
    device : str
        ``cpu`` or ``cuda``.
    data_options : dict, optional
        ``--data-opt`` values, e.g. ``{"n": 5000}`` for a subset.
    data_dir, data_key : str, optional
        Where the image set's files are; the array inside a ``.npz``.
    overrides : dict, optional
        TrainConfig values applied over every run (tests shrink the networks with it).
    on_progress : callable, optional
        The sweep's progress callback.

    Raises
    ------
    InputError
        Bad arguments, data that cannot be read, or data without grey levels
        (floating-point values: bits/dim of densities on them are bits of nothing discrete).

    Examples
    --------
    >>> run_compare("fashion-mnist", "compare", data_options={"n": 5000})  # doctest: +SKIP
    """
    epochs = COMPARE_EPOCHS if epochs is None else epochs
    check_positive_int("epochs", epochs)
    check_positive_int("seeds", seeds)
    check_choice("network", network, ("mlp", "conv"))
    levels = _data_levels(data, dict(data_options or {}), data_dir, data_key)
    if levels is None:
        raise InputError(f"compare ranks likelihoods in bits/dim of discrete data, but {data} holds "
                         "floating-point values (no grey levels); save the images as uint8 (0..255) "
                         "or other non-negative integers")
    grid, notes = compare_grid(data, levels=levels, epochs=epochs, seeds=seeds, network=network,
                               device=device, data_options=data_options, data_dir=data_dir,
                               data_key=data_key, overrides=overrides)
    done = sweep_and_report(grid, out, jobs=jobs, on_progress=on_progress, threads=None)
    return CompareResult(done.sweep, done.report_html, done.report_md, done.report_skipped,
                         notes=notes, levels=levels)
