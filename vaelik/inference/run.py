"""A fit's life around the SVI loop: set-up, run directory, checkpoints, resume, reload.

:func:`fit` checks the configuration, builds data and model (:func:`build`),
writes ``config.json`` and ``status``, runs :func:`~vaelik.inference.svi.train_epochs`
(writing ``metrics.csv`` and ``checkpoint.pt`` after an epoch when
:data:`CHECKPOINT_SECONDS` have passed since the last write, and after the last
epoch) for at most
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
import os
import time
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyro
import torch

from vaelik.config import FIELDS
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
from vaelik.inference.data.dequantise import dequantise_dataset, needs_dequantisation
from vaelik.inference.schedules import make_schedule
from vaelik.inference.stopping import EarlyStopping
from vaelik.inference.svi import (
    NonFiniteLoss,
    Trainer,
    create_params,
    require_tensorboard,
    train_epochs,
)
from vaelik.models import LocationScaleLikelihood, Model, build_model, get_likelihood
from vaelik.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    STATUS_FILE,
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
from vaelik.rundir.fingerprint import (
    FINGERPRINT_KEY,
    builtin_fingerprint,
    config_problem,
    config_sha256,
    data_problem,
    file_fingerprint,
    recorded,
)
from vaelik.rundir.io import clear_run_files
from vaelik.rundir.lock import LOCK_FILE, check_new_run_dir, hold_run_dir
from vaelik.validate import check_device

#: ``metrics.csv`` and ``checkpoint.pt`` are written after an epoch that ends at least this many
#: seconds after the last write (and after the last epoch): a kill loses at most this much
#: training, and a small model does not spend a third of its time writing files
#: (``VAELIK_CHECKPOINT_SECONDS``; 0 writes after every epoch)
CHECKPOINT_SECONDS = float(os.environ.get("VAELIK_CHECKPOINT_SECONDS", "5"))

__all__ = ["CHECKPOINT_SECONDS", "METRIC_COLUMNS", "FitResult", "build", "check_device_available",
           "evaluate_run", "fit", "fingerprint", "load_fitted", "resume"]

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


def check_device_available(name: str) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:N``) if this machine has it.

    Raises
    ------
    InputError
        A device vaelik does not run on (``tpu``), CUDA without a CUDA device, or
        a CUDA index this machine does not have; one line, before anything is written.
    """
    check_device("device", name)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name} was asked for but torch sees no CUDA device; "
                             "use --device cpu")
        index, count = torch.device(name).index, torch.cuda.device_count()
        if index is not None and index >= count:
            raise InputError(f"--device {name}: torch sees {count} CUDA device(s), cuda:0 to "
                             f"cuda:{count - 1}; choose one of them")
    return torch.device(name)


_device = check_device_available


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
        data_dir=config.data_dir,
    )
    from_data = type(likelihood).data_options(data.levels)  # e.g. a discretised family's levels
    if from_data:  # under the user's own --lik-opt, which win
        likelihood = get_likelihood(config.likelihood, **{**from_data, **config.likelihood_kwargs()})
    if needs_dequantisation(config.dequantise, data.levels, bool(likelihood.discrete)):
        data = dequantise_dataset(data, config.seed)  # a density on grey levels: (k + u)/L
    likelihood.check_data(data.train)
    likelihood.check_data(data.val)
    likelihood.check_data(data.test)
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
                            config.hidden_dim, data_shape=data.image_shape,
                            network=config.network)
    if config.data_init == "standardise":
        model.init_from_data(data.train)
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


def _stored_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The configuration fields of a ``config.json`` record, as stored (what its hash covers)."""
    return {k: v for k, v in record.items() if k in FIELDS}


def fingerprint(config: TrainConfig, data: Dataset,
                stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of a run (:mod:`vaelik.rundir.fingerprint`): ``config`` and ``data`` sha256.

    ``config`` hashes the configuration fields as ``config.json`` stores them
    (``stored``, else ``config`` as it will be written); ``data`` hashes the data
    file's bytes, or a built-in set's name and resolved options (``data.params``).
    """
    fields = _stored_fields(stored) if stored is not None else json.loads(
        json.dumps(config.to_dict()))
    from vaelik.inference.data import BUILTIN_DATA

    if config.data in BUILTIN_DATA:
        data_fp = builtin_fingerprint(config.data, data.params)
    else:
        data_fp = file_fingerprint(config.data)
    return {"config": config_sha256(fields), "data": data_fp}


def _config_record(config: TrainConfig, data: Dataset, fp: dict[str, Any]) -> dict[str, Any]:
    record = config.to_dict()
    record["data_info"] = data.info()
    record["versions"] = versions()
    record[FINGERPRINT_KEY] = fp
    return record


def fit(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    evaluate: bool = True,
    tensorboard: str | os.PathLike | None = None,
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
    tensorboard : path, optional
        Also write every epoch's ``metrics.csv`` rows as TensorBoard scalars into
        this folder (``pip install 'vaelik[tensorboard]'``); not part of the run's
        configuration.

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad configuration, data or device, ``tensorboard`` without its package,
        an output folder inside another run or a sweep, or one in use by another process: nothing is written, and an
        old run in ``out`` is kept (with ``overwrite`` it is replaced only once
        the new run has been set up).
    DivergenceError
        Non-finite ELBO; the run is marked ``failed`` and keeps its last good
        checkpoint.

    Examples
    --------
    >>> from vaelik.inference import TrainConfig, fit
    >>> result = fit(TrainConfig(data="digits", likelihood="normal", scale="learned",
    ...                          epochs=2), progress=False)
    """
    if tensorboard is not None:
        require_tensorboard()
    data, model = build(config)
    if out is None:
        return _train(config, data, model, None, progress=progress, evaluate=evaluate,
                      tensorboard=tensorboard)
    check_new_run_dir(out)
    fp = fingerprint(config, data)
    created = not os.path.lexists(out)
    run_dir = prepare_run_dir(out, overwrite=overwrite)
    started = False

    def start() -> None:
        """Everything was checked and set up: replace an old run by this one, status first."""
        nonlocal started
        started = True
        write_status(run_dir, Status.RUNNING)
        clear_run_files(run_dir, keep=(STATUS_FILE,))
        write_json(run_dir / CONFIG_FILE, _config_record(config, data, fp))

    locked = False
    try:
        with hold_run_dir(run_dir, command="train"):
            locked = True
            try:
                if not overwrite:  # a run that appeared since the check above
                    prepare_run_dir(run_dir)
                return _train(config, data, model, run_dir, progress=progress,
                              evaluate=evaluate, on_start=start, fingerprint=fp,
                              tensorboard=tensorboard)
            except BaseException:
                if created and not started:  # our own empty folder: its lock goes, held
                    (run_dir / LOCK_FILE).unlink(missing_ok=True)
                raise
    finally:
        if created and locked and not started:  # nothing of this run was written
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def resume(run_dir: str | Path, *, progress: bool = True, evaluate: bool = True,
           tensorboard: str | os.PathLike | None = None) -> FitResult:
    """Continue a run from its last checkpoint with the configuration stored in it.

    Holds the run directory's lock (:func:`vaelik.rundir.lock.hold_run_dir`)
    from the moment it may write until it returns.

    Raises
    ------
    InputError
        Missing folder/config, missing, truncated or foreign checkpoint, a run
        that is already complete, a ``config.json`` edited or a data file changed
        since the run started (its fingerprint), or a run in use by another
        process. Nothing in the folder is changed then.
    """
    if tensorboard is not None:  # the scalars of the epochs it trains, as fit's
        require_tensorboard()
    run_dir = Path(run_dir)
    stored = _read_stored(run_dir)
    config = TrainConfig.from_stored(stored)
    before = _snapshot(run_dir)
    _refuse_completed(run_dir)
    data, model = build(config)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE, map_location=config.device)
    fp = _check_unchanged(run_dir, stored, config.to_dict(), data, checkpoint, config)
    with hold_run_dir(run_dir, command="resume"):
        _same_snapshot(run_dir, before)
        return _train(config, data, model, run_dir, progress=progress, evaluate=evaluate,
                      checkpoint=checkpoint, on_start=lambda: _resumed(run_dir), fingerprint=fp,
                      tensorboard=tensorboard)


def _refuse_completed(run_dir: Path) -> None:
    if Status.is_completed(read_status(run_dir)):
        raise InputError(
            f"run {run_dir} is already completed; nothing to resume (to train longer, start a "
            "new run with more --epochs)"
        )


#: the files whose change between the checks and the lock makes a resume or evaluate stop
_WATCHED = (CONFIG_FILE, STATUS_FILE, CHECKPOINT_FILE)


def _snapshot(run_dir: Path) -> tuple:
    """Identity (inode, size, mtime) of the files a resume or an evaluate checked."""
    stats = []
    for name in _WATCHED:
        try:
            st = os.stat(run_dir / name)
            stats.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append(None)
    return tuple(stats)


def _same_snapshot(run_dir: Path, before: tuple) -> None:
    """Refuse when another process changed the run between the checks and taking the lock."""
    if _snapshot(run_dir) != before:
        raise InputError(f"run {run_dir} was changed by another process while vaelik checked "
                         "it; run the command again")


def _check_unchanged(run_dir: Path, stored: dict[str, Any], resolved: dict[str, Any],
                     data: Dataset, checkpoint: dict[str, Any],
                     config: TrainConfig) -> dict[str, Any]:
    """Refuse a run whose ``config.json`` was edited or whose data changed since it started.

    The checkpoint's configuration must be the one ``config.json`` resolves to
    (``resolved``), the recorded fingerprints (in ``config.json`` and the
    checkpoint) must match the stored configuration and the data as it is now.
    A run written before fingerprints existed is checked against its checkpoint's
    configuration only. Returns the run's fingerprint as it is now.
    """
    started = _checkpoint_config(checkpoint.get("config"))
    if started is None:
        raise InputError(
            f"checkpoint in {run_dir} was written by another configuration than its "
            "config.json; refusing to use it (start the run again with --overwrite)"
        )
    fingerprints = recorded(stored, checkpoint.get(FINGERPRINT_KEY))
    problem = config_problem(run_dir, _stored_fields(stored), resolved, started, fingerprints)
    now = fingerprint(config, data, stored)
    problem = problem or data_problem(now["data"], fingerprints)
    if problem:
        raise InputError(problem)
    return now


def _checkpoint_config(stored: object) -> dict[str, Any] | None:
    """A checkpoint's configuration (sorted JSON) resolved as :meth:`TrainConfig.from_stored`.

    The fields a newer vaelik added take the values of the vaelik that wrote it,
    so that a run interrupted before an upgrade still resumes. None if unreadable.
    """
    try:
        values = json.loads(stored) if isinstance(stored, str) else None
    except ValueError:
        return None
    if not isinstance(values, dict):
        return None
    try:
        return TrainConfig.from_stored(values).to_dict()
    except (TypeError, ValueError):
        return None


def _train(
    config: TrainConfig,
    data: Dataset,
    model: Model,
    run_dir: Path | None,
    *,
    progress: bool,
    evaluate: bool,
    checkpoint: dict[str, Any] | None = None,
    on_start: Callable[[], None] | None = None,
    fingerprint: dict[str, Any] | None = None,
    tensorboard: str | os.PathLike | None = None,
) -> FitResult:
    """The SVI loop with the run directory around it.

    Everything that can fail before training (device, seeds, parameters,
    optimiser, schedule, the checkpoint's states) is set up first; then
    ``on_start()`` writes to the run directory (a new run's ``config.json``, a
    resumed run's ``running``), and only then does the loop start.
    """
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
        schedule = make_schedule(config.lr_schedule, optimizer, config.epochs,  # before restore
                                 config.patience)
        if checkpoint is not None:
            restore(checkpoint, names, params, optimizer, gen, stopper=stopper, schedule=schedule)
            rows = list(checkpoint["metrics"])
            start_epoch = int(checkpoint["epoch"]) + 1
        if on_start is not None:  # set up and accepted: from here on the run may change the folder
            on_start()

        saved = {"epoch": start_epoch - 1, "at": time.monotonic()}

        def save(epoch: int, rows: list[dict[str, Any]], *, final: bool = False) -> None:
            # between epochs nothing draws from the RNGs (the metrics fork theirs), so a write
            # deferred to a later epoch's end, or to after the loop, holds the same state
            if run_dir is None or epoch == saved["epoch"] or (
                    not final and time.monotonic() - saved["at"] < CHECKPOINT_SECONDS):
                return
            write_csv(run_dir / METRICS_FILE, pd.DataFrame(rows, columns=METRIC_COLUMNS))
            save_checkpoint(
                run_dir / CHECKPOINT_FILE,
                make_checkpoint(config, names, params, optimizer, gen, epoch, rows,
                                stopper=stopper, schedule=schedule, fingerprint=fingerprint),
            )
            saved.update(epoch=epoch, at=time.monotonic())

        try:
            train_epochs(trainer, model, x_train, x_test, gen, first=start_epoch,
                         last=config.epochs, rows=rows, x_val=x_val, stopper=stopper,
                         schedule=schedule, on_epoch=save, progress=progress,
                         desc=config.name or f"{config.likelihood}/{config.scale}",
                         metrics_seed=config.seed, tensorboard=tensorboard)
            if rows:
                save(int(rows[-1]["epoch"]), rows, final=True)
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


def _read_stored(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` record of a run directory (a JSON object)."""
    if not (run_dir / CONFIG_FILE).exists():
        raise InputError(
            f"{run_dir} is not a run directory (no config.json); give a folder that "
            "`vaelik train --out` wrote"
        )
    # any bytes, and values of other types than the fields declare, are one RunFileError (exit 2)
    return read_record(run_dir / CONFIG_FILE, typing.get_type_hints(TrainConfig),
                       hint="the run cannot be used; train it again with --overwrite")


def load_fitted(run_dir: str | Path, device: str | None = None) -> FitResult:
    """Rebuild a fitted model from a run directory's ``config.json`` and ``checkpoint.pt``.

    The model has the best epoch's parameters (:func:`~vaelik.inference.checkpoint.fitted_params`:
    the checkpoint's ``best``, else its last ones); ``training`` says which epoch.
    The returned ``FitResult.model`` has its parameters in ``model.param_state``
    (use ``with result.model.params(): ...``); ``metrics`` is read from
    ``metrics.csv`` and ``evaluation`` from ``eval.json`` where present.

    Raises
    ------
    InputError
        Not a run directory, a missing or foreign checkpoint, a ``config.json``
        edited or a data file changed since the run started (its fingerprint).
    """
    run_dir = Path(run_dir)
    stored = _read_stored(run_dir)
    config = TrainConfig.from_stored(stored)
    if device is not None:
        config.device = device
    data, model = build(config)
    dev = _device(config.device)
    model.to(dev)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE, map_location=config.device)
    # compared as config.json says it (the device asked for here is not an edit)
    resolved = {**config.to_dict(), "device": TrainConfig.from_stored(stored).device}
    _check_unchanged(run_dir, stored, resolved, data, checkpoint, config)
    x = data.train[: config.batch_size].to(dev)
    idx = torch.arange(x.shape[0], device=dev)
    with model.params():
        names, params = create_params(model, x, idx, data.train.shape[0])
        stored_params = fitted_params(checkpoint)
        if params_mismatch(checkpoint["params"], names, params) or params_mismatch(
                stored_params, names, params):
            raise InputError(
                f"checkpoint in {run_dir} does not match its config.json (other parameters or "
                "shapes); was one of them replaced?"
            )
        load_params(stored_params, names, params)
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
    """Re-run the final evaluation of a run directory and rewrite ``eval.json`` & co.

    Everything is checked first (:func:`load_fitted`: the checkpoint, the
    fingerprint); the evaluation then runs holding the run directory's lock, so
    no other process trains, resumes or evaluates the run meanwhile.
    """
    from vaelik.inference.evaluate import evaluate_model

    if iwae_samples is not None:
        from vaelik.validate import check_positive_int

        check_positive_int("iwae-samples", iwae_samples)
    run_dir = Path(run_dir)
    before = _snapshot(run_dir)
    result = load_fitted(run_dir)
    with hold_run_dir(run_dir, command="evaluate"):
        _same_snapshot(run_dir, before)
        pyro.set_rng_seed(result.config.seed)
        with result.model.params():
            return evaluate_model(result.model, result.data, result.config,
                                  run_dir=result.run_dir, num_samples=iwae_samples,
                                  training=result.training)
