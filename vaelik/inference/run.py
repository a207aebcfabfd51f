"""A fit's life around the SVI loop: set-up, run directory, checkpoints, resume, reload.

:func:`fit` checks the configuration, builds data and model (:func:`build`),
writes ``config.json`` and ``status``, runs :func:`~vaelik.inference.svi.train_epochs`
(writing ``metrics.csv`` and ``checkpoint.pt`` after every epoch) for at most
``epochs`` epochs, stopping early when the validation ELBO has not improved for
``patience`` epochs (:mod:`vaelik.inference.stopping`), puts back the best epoch's
parameters, evaluates them and marks the run ``completed``. A checkpoint holds
tensors only: the last and the best parameters, the optimiser, early-stopping
and schedule states, every RNG state a fit draws from, and the metric rows, so
that :func:`resume` continues bit-exactly where it stopped. :func:`load_fitted`
rebuilds the fitted (best) model from a run directory; :func:`evaluate_run`
re-runs its evaluation.
"""

from __future__ import annotations

import contextlib
import json
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyro
import torch

from vaelik.errors import InputError
from vaelik.inference.checkpoint import (
    fitted_params,
    load_checkpoint,
    load_params,
    make_checkpoint,
    params_mismatch,
    restore,
    save_checkpoint,
    training_summary,
)
from vaelik.inference.config import TrainConfig, versions
from vaelik.inference.data import Dataset, load_data
from vaelik.inference.schedules import make_schedule
from vaelik.inference.stopping import EarlyStopping
from vaelik.inference.svi import NonFiniteLoss, Trainer, create_params, train_epochs
from vaelik.models import LocationScaleLikelihood, Model, build_model, get_likelihood
from vaelik.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    RunFileError,
    Status,
    prepare_run_dir,
    read_eval,
    read_record,
    read_status,
    write_csv,
    write_json,
    write_status,
)

__all__ = ["METRIC_COLUMNS", "FitResult", "build", "evaluate_run", "fit", "load_fitted", "resume"]

METRIC_COLUMNS = list(METRICS_COLUMNS)  # the columns of metrics.csv, spelled in vaelik.rundir.schema


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : Model
        The fitted model, with the best epoch's parameters (the last ones without
        a validation split); its Pyro parameters are active inside ``model.params()``.
    data : Dataset
        The data it was fitted on (train/validation/test split).
    config : TrainConfig
        The resolved configuration.
    metrics : pandas.DataFrame
        One row per epoch and split (columns of ``metrics.csv``).
    evaluation : dict
        Contents of ``eval.json`` (empty if evaluation was skipped).
    run_dir : pathlib.Path or None
        Where the run directory was written.
    status : str
        ``completed`` or ``failed: ...``.
    training : dict
        ``best_epoch``, ``epochs_run`` and ``stopped_early`` (as in ``eval.json``).
    """

    model: Model
    data: Dataset
    config: TrainConfig
    metrics: pd.DataFrame
    evaluation: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    status: str = Status.COMPLETED
    training: dict[str, Any] = field(default_factory=dict)


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def build(config: TrainConfig) -> tuple[Dataset, Model]:
    """Check ``config``, load the data and build the (untrained) model.

    Raises
    ------
    InputError
        For any bad field, data problem, or data outside the likelihood's support.
    """
    config.check()
    _device(config.device)  # before anything is written: --device cuda without CUDA is bad input
    likelihood = get_likelihood(config.likelihood, **config.likelihood_kwargs())
    data = load_data(
        config.data,
        seed=config.seed,
        test_fraction=config.test_fraction,
        key=config.data_key,
        options=config.data_options,
        val_fraction=config.val_fraction,
    )
    likelihood.check_data(data.train)
    likelihood.check_data(data.val)
    likelihood.check_data(data.test)
    if config.lr_schedule == "plateau" and data.val.shape[0] == 0:
        raise InputError("lr-schedule plateau reduces the rate on a flat validation ELBO and "
                         "needs a validation split; set --val-fraction above 0")
    if config.init_scale is None and isinstance(likelihood, LocationScaleLikelihood):
        likelihood.init_scale = max(_spread(likelihood, data.train), 2 * likelihood.min_scale)
    n_train = data.train.shape[0]
    if config.batch_size > n_train:
        raise InputError(
            f"batch-size {config.batch_size} is larger than the training set ({n_train} rows); "
            f"use --batch-size {n_train} or less"
        )
    # the initial weights come from the seed, not from whatever the global RNG holds
    # (two fits with one seed in one process are the same fit); the global RNG is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, likelihood, data.dim, config.latent_dim,
                            config.hidden_dim, data_shape=data.image_shape)
    return data, model


def _spread(likelihood: LocationScaleLikelihood, x: torch.Tensor) -> float:
    """The ML scale of a decoder that predicts the per-dimension mean of ``x``.

    Families without an ``optimal_scale`` (user subclasses) get the RMS deviation.
    """
    mean = x.mean(0, keepdim=True).expand_as(x)
    try:
        return float(likelihood.optimal_scale(x, mean).squeeze())
    except NotImplementedError:
        return float((x - mean).pow(2).mean().sqrt())


def _config_record(config: TrainConfig, data: Dataset) -> dict[str, Any]:
    record = config.to_dict()
    record["data_info"] = data.info()
    record["versions"] = versions()
    return record


def fit(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    evaluate: bool = True,
) -> FitResult:
    """Fit a model with SVI and (if ``out`` is given) write its run directory.

    Parameters
    ----------
    config : TrainConfig
        What to fit; checked before anything is written.
    out : path, optional
        Run directory to write (``config.json``, ``metrics.csv``, ``checkpoint.pt``
        every epoch, ``eval.json`` etc. at the end, ``status`` last).
    progress : bool
        Show a progress bar on stderr.
    overwrite : bool
        Replace a run already in ``out``.
    evaluate : bool
        Run the final evaluation (IWAE log p(x), MI, ...) and write ``eval.json``.

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad configuration or data (nothing is written).
    DivergenceError
        Non-finite ELBO; the run is marked ``failed`` and keeps its last good
        checkpoint.

    Examples
    --------
    >>> from vaelik.inference import TrainConfig, fit
    >>> result = fit(TrainConfig(data="digits", likelihood="normal", scale="learned",
    ...                          epochs=2), progress=False)
    """
    data, model = build(config)
    run_dir = prepare_run_dir(out, overwrite=overwrite) if out is not None else None
    if run_dir is not None:
        write_json(run_dir / CONFIG_FILE, _config_record(config, data))
        write_status(run_dir, Status.RUNNING)
    return _train(config, data, model, run_dir, progress=progress, evaluate=evaluate)


def resume(run_dir: str | Path, *, progress: bool = True, evaluate: bool = True) -> FitResult:
    """Continue a run from its last checkpoint with the configuration stored in it.

    Raises
    ------
    InputError
        Missing folder/config, missing, truncated or foreign checkpoint, or a
        run that is already complete. Nothing in the folder is changed then.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    if Status.is_completed(read_status(run_dir)):
        raise InputError(
            f"run {run_dir} is already completed; nothing to resume (to train longer, start a "
            "new run with more --epochs)"
        )
    data, model = build(config)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE, map_location=config.device)
    if not _same_config(checkpoint.get("config"), config):
        raise InputError(
            f"checkpoint in {run_dir} was written by another configuration than its "
            "config.json; refusing to resume (start the run again with --overwrite)"
        )
    return _train(config, data, model, run_dir, progress=progress, evaluate=evaluate,
                  checkpoint=checkpoint)


def _train(
    config: TrainConfig,
    data: Dataset,
    model: Model,
    run_dir: Path | None,
    *,
    progress: bool,
    evaluate: bool,
    checkpoint: dict[str, Any] | None = None,
) -> FitResult:
    device = _device(config.device)
    pyro.set_rng_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model.to(device)
    x_train, x_test = data.train.to(device), data.test.to(device)
    x_val = data.val.to(device) if data.val.shape[0] else None
    stopper = EarlyStopping(config.patience)
    rows: list[dict[str, Any]] = []
    start_epoch = 1
    with model.params(), warnings.catch_warnings():
        # a non-finite loss is detected and reported by vaelik itself (NonFiniteLoss); Pyro's
        # own "Encountered NaN/inf" warnings would only add lines before that one message
        warnings.filterwarnings("ignore", message="Encountered (NaN|[+-]?inf)", category=UserWarning)
        trainer = Trainer(config, model, x_train)
        names, params, optimizer = trainer.names, trainer.params, trainer.optimizer
        schedule = make_schedule(config.lr_schedule, optimizer, config.epochs)  # before restore
        if checkpoint is not None:
            restore(checkpoint, names, params, optimizer, gen, stopper=stopper, schedule=schedule)
            rows = list(checkpoint["metrics"])
            start_epoch = int(checkpoint["epoch"]) + 1
            if run_dir is not None:  # accepted: from here on the resume may change the folder
                _resumed(run_dir)

        def save(epoch: int, rows: list[dict[str, Any]]) -> None:
            if run_dir is not None:
                write_csv(run_dir / METRICS_FILE, pd.DataFrame(rows, columns=METRIC_COLUMNS))
                save_checkpoint(
                    run_dir / CHECKPOINT_FILE,
                    make_checkpoint(config, names, params, optimizer, gen, epoch, rows,
                                    stopper=stopper, schedule=schedule),
                )

        try:
            train_epochs(trainer, model, x_train, x_test, gen, first=start_epoch,
                         last=config.epochs, rows=rows, x_val=x_val, stopper=stopper,
                         schedule=schedule, on_epoch=save, progress=progress,
                         desc=config.name or f"{config.likelihood}/{config.scale}")
        except KeyboardInterrupt:
            if run_dir is not None:
                write_status(run_dir, Status.INTERRUPTED)
            raise
        except NonFiniteLoss as e:  # the last epoch's checkpoint stays
            if run_dir is not None:
                kept = "; last good checkpoint kept" if (run_dir / CHECKPOINT_FILE).exists() else ""
                write_status(run_dir, f"failed: {e.reason}{kept}")
            raise
        except Exception as e:
            if run_dir is not None:
                write_status(run_dir, f"failed: {type(e).__name__}: {e}")
            raise
        metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
        if stopper.best_params is not None:  # the fitted model is the best epoch's
            load_params(stopper.best_params, names, params)
        epochs_run = int(rows[-1]["epoch"]) if rows else 0
        result = FitResult(model=model, data=data, config=config, metrics=metrics, run_dir=run_dir,
                           training=stopper.summary(epochs_run))
        if evaluate:
            from vaelik.inference.evaluate import evaluate_model

            try:
                result.evaluation = evaluate_model(model, data, config, run_dir=run_dir,
                                                   training=result.training)
            except BaseException as e:
                if run_dir is not None:  # the training is kept (checkpoint.pt, metrics.csv)
                    reason = Status.INTERRUPTED if isinstance(e, KeyboardInterrupt) else (
                        f"failed: final evaluation: {type(e).__name__}: {e}; the trained model "
                        f"is kept, rerun it with `vaelik evaluate {run_dir}`")
                    write_status(run_dir, reason)
                raise
    if run_dir is not None:
        write_status(run_dir, Status.COMPLETED)
    return result


def _resumed(run_dir: Path) -> None:
    """Mark a run whose resume was accepted ``running`` and drop stale temporary files.

    These are the ``.<file>.<random>.tmp`` files a killed process may have left
    (see ``atomic_write_bytes``).
    """
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    write_status(run_dir, Status.RUNNING)


def _same_config(stored: object, config: TrainConfig) -> bool:
    """Whether a checkpoint's configuration (sorted JSON) is ``config``.

    Compared after parsing, with the fields a newer vaelik added at their
    defaults, so that a run interrupted before an upgrade still resumes.
    """
    try:
        values = json.loads(stored) if isinstance(stored, str) else None
    except ValueError:
        return False
    if not isinstance(values, dict):
        return False
    try:
        return TrainConfig.from_stored(values).to_dict() == config.to_dict()
    except (TypeError, ValueError):
        return False


def _read_config(run_dir: Path) -> TrainConfig:
    if not (run_dir / CONFIG_FILE).exists():
        raise InputError(
            f"{run_dir} is not a run directory (no config.json); give a folder that "
            "`vaelik train --out` wrote"
        )
    # any bytes, and values of other types than the fields declare, are one RunFileError (exit 2)
    stored = read_record(run_dir / CONFIG_FILE, typing.get_type_hints(TrainConfig),
                         hint="the run cannot be used; train it again with --overwrite")
    return TrainConfig.from_stored(stored)


def load_fitted(run_dir: str | Path, device: str | None = None) -> FitResult:
    """Rebuild a fitted model from a run directory's ``config.json`` and ``checkpoint.pt``.

    The model has the best epoch's parameters (:func:`~vaelik.inference.checkpoint.fitted_params`:
    the checkpoint's ``best``, else its last ones); ``training`` says which epoch.
    The returned ``FitResult.model`` has its parameters in ``model.param_state``
    (use ``with result.model.params(): ...``); ``metrics`` is read from
    ``metrics.csv`` and ``evaluation`` from ``eval.json`` where present.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    if device is not None:
        config.device = device
    data, model = build(config)
    dev = _device(config.device)
    model.to(dev)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE, map_location=config.device)
    x = data.train[: config.batch_size].to(dev)
    idx = torch.arange(x.shape[0], device=dev)
    with model.params():
        names, params = create_params(model, x, idx, data.train.shape[0])
        stored = fitted_params(checkpoint)
        if params_mismatch(checkpoint["params"], names, params) or params_mismatch(
                stored, names, params):
            raise InputError(
                f"checkpoint in {run_dir} does not match its config.json (other parameters or "
                "shapes); was one of them replaced?"
            )
        load_params(stored, names, params)
    metrics = pd.DataFrame(checkpoint.get("metrics", []), columns=METRIC_COLUMNS)
    evaluation = {}
    if (run_dir / EVAL_FILE).exists():
        with contextlib.suppress(RunFileError):  # a bad eval.json is what `vaelik evaluate` repairs
            evaluation = read_eval(run_dir / EVAL_FILE)
    return FitResult(model=model, data=data, config=config, metrics=metrics,
                     evaluation=evaluation, run_dir=run_dir,
                     status=read_status(run_dir) or "unknown",
                     training=training_summary(checkpoint))


def evaluate_run(run_dir: str | Path, iwae_samples: int | None = None) -> dict[str, Any]:
    """Re-run the final evaluation of a run directory and rewrite ``eval.json`` & co."""
    from vaelik.inference.evaluate import evaluate_model

    result = load_fitted(run_dir)
    if iwae_samples is not None:
        from vaelik.validate import check_positive_int

        check_positive_int("iwae-samples", iwae_samples)
    pyro.set_rng_seed(result.config.seed)
    with result.model.params():
        return evaluate_model(result.model, result.data, result.config, run_dir=result.run_dir,
                              num_samples=iwae_samples, training=result.training)
