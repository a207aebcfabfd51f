"""The SVI loop, written once: every ELBO choice and device is an option of it.

One step is Pyro's ``elbo.differentiable_loss(model, guide, x_batch, idx, N)``,
``loss.backward()`` and one ``torch.optim`` optimiser over *all* parameters
(``pyro.optim`` keeps one optimiser per parameter). The data set lives on the
device as one tensor and batches are index tensors, not a ``DataLoader``.
With the default ELBO (``jit-meanfield``) a step reads nothing back from the
device but a finiteness flag: every step on CPU, where execution is synchronous
and it costs nothing, every ``CUDA_SYNC_EVERY`` steps on CUDA. The step and its
set-up are :class:`Trainer`, which ``benchmarks/run.py`` drives too
(``docs/performance.md``).
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyro
import torch

from vaelik.errors import DivergenceError, InputError
from vaelik.inference.config import TrainConfig, versions
from vaelik.inference.data import Dataset, load_data
from vaelik.inference.elbo import guide_and_model_traces, make_elbo
from vaelik.inference.rundir import (
    load_checkpoint,
    prepare_run_dir,
    read_status,
    save_checkpoint,
    write_csv,
    write_json,
    write_status,
)
from vaelik.inference.terms import split_metrics
from vaelik.models import LocationScaleLikelihood, Model, build_model, get_likelihood

__all__ = ["FitResult", "fit", "resume", "build", "load_fitted", "evaluate_run", "METRIC_COLUMNS"]

METRIC_COLUMNS = ["epoch", "split", "elbo", "recon", "kl", "mse", "mae", "bce", "scale", "seconds"]
#: on CUDA, read the device-side finiteness flag every this many steps
CUDA_SYNC_EVERY = 25


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : Model
        The fitted model; its Pyro parameters are active inside ``model.params()``.
    data : Dataset
        The data it was fitted on (train/test split).
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
    """

    model: Model
    data: Dataset
    config: TrainConfig
    metrics: pd.DataFrame
    evaluation: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    status: str = "completed"


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
    )
    likelihood.check_data(data.train)
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


def _off_rng_stream(device: torch.device):
    """Run a block without advancing the global RNG state (of this device too)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _create_params(model: Model, x: torch.Tensor, idx: torch.Tensor, num_data: int):
    """Create every Pyro parameter of ``model`` (one guide and model trace, off the RNG
    stream); return the sorted names and the unconstrained tensors."""
    with _off_rng_stream(x.device):
        guide_and_model_traces(model.model, model.guide, x, idx, num_data=num_data)
    return _param_names_and_tensors()


def _param_names_and_tensors() -> tuple[list[str], list[torch.Tensor]]:
    store = pyro.get_param_store()
    names = sorted(store.keys())
    return names, [store.get_param(n).unconstrained() for n in names]


def _make_optimizer(config: TrainConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if config.optimizer == "clipped-adam":
        from pyro.optim.clipped_adam import ClippedAdam

        return ClippedAdam(params, lr=config.lr, clip_norm=10.0)
    return torch.optim.Adam(params, lr=config.lr)


class Trainer:
    """The inner training step of :func:`fit`, set up once; ``benchmarks/run.py`` drives it too.

    Set-up (call inside ``model.params()``): one trace of guide and model creates
    every parameter and, for a JIT ELBO, the loss is recorded, both under
    ``torch.random.fork_rng`` so that set-up never consumes the training RNG
    stream (resume stays bit-exact); then one optimiser over all parameters.
    A step is ``elbo.differentiable_loss(model, guide, x[idx], idx, num_data=N)``,
    ``backward()`` and ``optimizer.step()``. The model and guide are bound once:
    a bound method is a new object on every attribute access, and Pyro's
    ``JitTrace_ELBO`` keys its compiled function on ``id(model)``, so passing
    ``model.model`` afresh each step made it re-trace whenever the id changed.

    Parameters
    ----------
    config : TrainConfig
        ``elbo``, ``optimizer``, ``lr`` and ``batch_size`` are used.
    model : Model
        On the device already.
    x_train : torch.Tensor
        The whole training set on the device, shape ``(N, d)``; batches are index tensors.
    """

    def __init__(self, config: TrainConfig, model: Model, x_train: torch.Tensor) -> None:
        self.elbo = make_elbo(config.elbo)
        self.model_fn, self.guide_fn = model.model, model.guide
        self.x, self.n, self.batch = x_train, x_train.shape[0], config.batch_size
        device = x_train.device
        self.sync_every = 1 if device.type == "cpu" else CUDA_SYNC_EVERY
        idx0 = torch.arange(self.batch, device=device)
        self.names, self.params = _create_params(model, x_train[idx0], idx0, self.n)
        if config.elbo.startswith("jit"):  # record once now, off the training RNG stream
            with _off_rng_stream(device), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", message=".*torch.jit.*")
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                self.loss(idx0)
        self.optimizer = _make_optimizer(config, self.params)

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        """The minibatch negative ELBO of rows ``idx`` (differentiable, on the device)."""
        return self.elbo.differentiable_loss(
            self.model_fn, self.guide_fn, self.x[idx], idx, num_data=self.n
        )

    def run(self, perm: torch.Tensor, start: int, count: int) -> int | None:
        """Take ``count`` steps on batches ``start, start + 1, ...`` of the permutation ``perm``.

        Returns None, or the (1-based) step at which a non-finite loss was seen;
        the optimiser does not step on a non-finite loss's gradients. The device
        flag is read every step on CPU (free: CPU execution is synchronous) and
        every ``CUDA_SYNC_EVERY`` steps on CUDA; nothing else reads back.
        """
        batch, sync_every, optimizer = self.batch, self.sync_every, self.optimizer
        bad = torch.zeros((), dtype=torch.bool, device=self.x.device)
        for step in range(start, start + count):
            idx = perm[step * batch : (step + 1) * batch]
            loss = self.loss(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            bad |= ~torch.isfinite(loss)
            if (step + 1 - start) % sync_every == 0 or step == start + count - 1:
                if bool(bad):
                    return step + 1
            optimizer.step()
        return None


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    """Every RNG a fit may draw from (those ``pyro.set_rng_seed`` seeds, and the batch
    generator), as tensors and numbers only (``torch.load(weights_only=True)``)."""
    import numpy as np

    python = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "batches": gen.get_state(),
             "python": list(python[1]), "python_gauss": python[2],
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    gen.set_state(state["batches"])
    random.setstate((3, tuple(state["python"]), state.get("python_gauss")))
    if "numpy" in state:  # checkpoints written before it was stored lack it
        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
        write_json(run_dir / "config.json", _config_record(config, data))
        write_status(run_dir, "running")
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
    if read_status(run_dir) == "completed":
        raise InputError(
            f"run {run_dir} is already completed; nothing to resume (to train longer, start a "
            "new run with more --epochs)"
        )
    data, model = build(config)
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt", map_location=config.device)
    if checkpoint.get("config") != json.dumps(config.to_dict(), sort_keys=True):
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
    from tqdm.auto import tqdm

    device = _device(config.device)
    pyro.set_rng_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model.to(device)
    x_train, x_test = data.train.to(device), data.test.to(device)
    n_train, batch = x_train.shape[0], config.batch_size
    steps = n_train // batch  # full batches only: the plate scale N/B is fixed (JIT-safe)
    rows: list[dict[str, Any]] = []
    start_epoch = 1
    with model.params(), warnings.catch_warnings():
        # a non-finite loss is detected and reported by vaelik itself (_diverged); Pyro's own
        # "Encountered NaN/inf" warnings would only add lines before that one message
        warnings.filterwarnings("ignore", message="Encountered (NaN|[+-]?inf)", category=UserWarning)
        trainer = Trainer(config, model, x_train)
        names, params, optimizer = trainer.names, trainer.params, trainer.optimizer
        if checkpoint is not None:
            _restore(checkpoint, names, params, optimizer, gen)
            rows = list(checkpoint["metrics"])
            start_epoch = int(checkpoint["epoch"]) + 1
            if run_dir is not None:  # accepted: from here on the resume may change the folder
                _resumed(run_dir)
        bar = tqdm(
            range(start_epoch, config.epochs + 1),
            desc=config.name or f"{config.likelihood}/{config.scale}",
            disable=not progress, leave=False, unit="epoch", initial=start_epoch - 1,
            total=config.epochs,
        )
        try:
            for epoch in bar:
                tick = time.perf_counter()
                perm = torch.randperm(n_train, generator=gen).to(device)
                bad_step = trainer.run(perm, 0, steps)
                if bad_step is not None:
                    _diverged(run_dir, epoch, bad_step, rows)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - tick
                epoch_rows = []
                for split, x in (("train", x_train), ("test", x_test)):
                    m = split_metrics(model, x)
                    epoch_rows.append({"epoch": epoch, "split": split, **m, "seconds": seconds})
                if not all(math.isfinite(r["elbo"]) for r in epoch_rows):
                    _diverged(run_dir, epoch, steps, rows, where="in the end-of-epoch metrics")
                rows.extend(epoch_rows)
                test_row = epoch_rows[1]
                postfix = {"test_elbo": f"{test_row['elbo']:.2f}"}
                if test_row["scale"] is not None:
                    postfix["scale"] = f"{test_row['scale']:.4f}"
                bar.set_postfix(postfix)
                if run_dir is not None:
                    write_csv(run_dir / "metrics.csv", pd.DataFrame(rows, columns=METRIC_COLUMNS))
                    save_checkpoint(
                        run_dir / "checkpoint.pt",
                        _checkpoint(config, names, params, optimizer, gen, epoch, rows),
                    )
        except KeyboardInterrupt:
            if run_dir is not None:
                write_status(run_dir, "interrupted")
            raise
        except DivergenceError:
            raise
        except Exception as e:
            if run_dir is not None:
                write_status(run_dir, f"failed: {type(e).__name__}: {e}")
            raise
        finally:
            bar.close()
        metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
        result = FitResult(model=model, data=data, config=config, metrics=metrics, run_dir=run_dir)
        if evaluate:
            from vaelik.inference.evaluate import evaluate_model

            try:
                result.evaluation = evaluate_model(model, data, config, run_dir=run_dir)
            except BaseException as e:
                if run_dir is not None:  # the training is kept (checkpoint.pt, metrics.csv)
                    reason = "interrupted" if isinstance(e, KeyboardInterrupt) else (
                        f"failed: final evaluation: {type(e).__name__}: {e}; the trained model "
                        f"is kept, rerun it with `vaelik evaluate {run_dir}`")
                    write_status(run_dir, reason)
                raise
    if run_dir is not None:
        write_status(run_dir, "completed")
    return result


def _diverged(
    run_dir: Path | None, epoch: int, step: int, rows: list[dict[str, Any]], where: str = ""
) -> None:
    """Mark the run ``failed: ...`` (the last epoch's checkpoint stays) and raise.

    The message names the epoch and step where the loss stopped being finite
    (``where`` says if it was found elsewhere, e.g. in the end-of-epoch metrics)
    and the last finite values: the train ELBO, recon and KL of the last epoch.
    """
    last = [r for r in rows if r["split"] == "train"]
    if last:
        r = last[-1]
        finite = (f"last finite train ELBO {r['elbo']:.4g} (recon {r['recon']:.4g}, "
                  f"kl {r['kl']:.4g}) at epoch {r['epoch']}")
    else:
        finite = "no epoch finished before it"
    at = f"epoch {epoch}, step {step}" + (f" ({where})" if where else "")
    message = f"ELBO diverged (non-finite) at {at}; {finite}"
    if run_dir is not None:
        kept = "; last good checkpoint kept" if (run_dir / "checkpoint.pt").exists() else ""
        write_status(run_dir, f"failed: {message}{kept}")
    raise DivergenceError(message + "; lower --lr, use --optimizer clipped-adam, or raise --min-scale")


def _checkpoint(config, names, params, optimizer, gen, epoch, rows) -> dict[str, Any]:
    return {
        "format": 1,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "epoch": epoch,
        "params": {n: p.detach().cpu().clone() for n, p in zip(names, params)},
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(gen),
        "metrics": [dict(r) for r in rows],
    }


def _resumed(run_dir: Path) -> None:
    """Mark a run whose resume was accepted ``running`` and drop the temporary files
    a killed process may have left (``.<file>.<random>.tmp``, see ``atomic_write_bytes``)."""
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    write_status(run_dir, "running")


def _params_mismatch(stored: dict[str, torch.Tensor], names, params) -> str | None:
    """Why checkpoint tensors ``stored`` do not fit the model's parameters (None if they do)."""
    if sorted(stored) != names:
        return "checkpoint parameters do not match the model"
    for n, p in zip(names, params):
        if stored[n].shape != p.shape:
            return (f"checkpoint parameter {n} has shape {tuple(stored[n].shape)}, "
                    f"the model {tuple(p.shape)}")
    return None


def _load_params(stored: dict[str, torch.Tensor], names, params) -> None:
    with torch.no_grad():
        for n, p in zip(names, params):
            p.copy_(stored[n].to(p.device))


def _restore(checkpoint, names, params, optimizer, gen) -> None:
    mismatch = _params_mismatch(checkpoint["params"], names, params)
    if mismatch:
        raise InputError(f"{mismatch}; refusing to resume")
    _load_params(checkpoint["params"], names, params)
    optimizer.load_state_dict(checkpoint["optimizer"])
    _set_rng_state(checkpoint["rng"], gen)


def _read_config(run_dir: Path) -> TrainConfig:
    try:
        stored = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise InputError(
            f"{run_dir} is not a run directory (no config.json); give a folder that "
            "`vaelik train --out` wrote"
        ) from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {run_dir / 'config.json'}: {e}") from None
    if not isinstance(stored, dict):
        raise InputError(f"{run_dir / 'config.json'} is not a configuration object")
    return TrainConfig.from_dict(stored)


def load_fitted(run_dir: str | Path, device: str | None = None) -> FitResult:
    """Rebuild a fitted model from a run directory's ``config.json`` and ``checkpoint.pt``.

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
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt", map_location=config.device)
    x = data.train[: config.batch_size].to(dev)
    idx = torch.arange(x.shape[0], device=dev)
    with model.params():
        names, params = _create_params(model, x, idx, data.train.shape[0])
        if _params_mismatch(checkpoint["params"], names, params):
            raise InputError(
                f"checkpoint in {run_dir} does not match its config.json (other parameters or "
                "shapes); was one of them replaced?"
            )
        _load_params(checkpoint["params"], names, params)
    metrics = pd.DataFrame(checkpoint.get("metrics", []), columns=METRIC_COLUMNS)
    evaluation = {}
    if (run_dir / "eval.json").exists():
        evaluation = json.loads((run_dir / "eval.json").read_text())
    return FitResult(model=model, data=data, config=config, metrics=metrics,
                     evaluation=evaluation, run_dir=run_dir,
                     status=read_status(run_dir) or "unknown")


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
                              num_samples=iwae_samples)
