"""The SVI loop, written once: every ELBO choice and device is an option of it.

One step is Pyro's ``elbo.differentiable_loss(model, guide, x_batch, idx, N)``,
``loss.backward()`` and one ``torch.optim`` optimiser over *all* parameters
(``pyro.optim`` keeps one optimiser per parameter). The data set lives on the
device as one tensor and batches are index tensors, not a ``DataLoader``.
With the default ELBO (``jit-meanfield``) a step reads nothing back from the
device but a finiteness flag: every step on CPU, where execution is synchronous
and it costs nothing, every ``CUDA_SYNC_EVERY`` steps on CUDA. The step and its
set-up are :class:`Trainer`, which ``benchmarks/run.py`` drives too
(``docs/performance.md``); :func:`train_epochs` is the epoch loop over it, with
the end-of-epoch metrics, the divergence check, early stopping on the validation
ELBO (:mod:`vaelik.inference.stopping`) and the learning-rate schedule
(:mod:`vaelik.inference.schedules`), the progress bar (:func:`progress_bar`) and
optional TensorBoard scalars (:func:`tensorboard_writer`). The run around the loop
(run directory, checkpoints, RNG state, resume, evaluation) is
:mod:`vaelik.inference.run`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import pyro
import torch

from vaelik.errors import DivergenceError, InputError
from vaelik.inference.config import TrainConfig
from vaelik.inference.elbo import guide_and_model_traces, make_elbo
from vaelik.inference.schedules import Schedule
from vaelik.inference.stopping import EarlyStopping
from vaelik.inference.terms import split_metrics
from vaelik.models import Model

__all__ = ["CUDA_SYNC_EVERY", "METRICS_SEED_OFFSET", "NonFiniteLoss", "TENSORBOARD_EXTRA", "Trainer",
           "create_params", "epoch_metrics", "progress_bar", "progress_postfix", "require_tensorboard",
           "tensorboard_writer", "train_epochs", "write_scalars"]

#: on CUDA, read the device-side finiteness flag every this many steps
CUDA_SYNC_EVERY = 25
#: the end-of-epoch metrics of split ``i`` draw their z with seed ``metrics_seed + i``
#: (common random numbers, see :func:`epoch_metrics`)
METRICS_SEED_OFFSET = 7919
#: what the divergence error suggests (not written into the run's status)
DIVERGENCE_ADVICE = "; lower --lr, use --optimizer clipped-adam, or raise --min-scale"
#: the pip extra that installs TensorBoard (``--tensorboard``)
TENSORBOARD_EXTRA = "vaelik[tensorboard]"
#: the progress bar when early stopping may end the run before ``--epochs``: the total
#: and the time left are upper bounds (tqdm's ETA assumes every epoch runs)
BAR_AT_MOST = ("{l_bar}{bar}| {n_fmt} of at most {total_fmt} epochs "
               "[{elapsed}, at most {remaining} left, {rate_fmt}{postfix}]")
#: the progress bar when every epoch up to ``--epochs`` runs
BAR_EXACT = "{l_bar}{bar}| {n_fmt}/{total_fmt} epochs [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def _off_rng_stream(device: torch.device):
    """Run a block without advancing the global RNG state (of this device too)."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def create_params(model: Model, x: torch.Tensor, idx: torch.Tensor,
                  num_data: int) -> tuple[list[str], list[torch.Tensor]]:
    """Create every Pyro parameter of ``model``; return the sorted names and unconstrained tensors.

    One trace of guide and model on the batch ``x`` (rows ``idx`` of ``num_data``),
    off the RNG stream. Call inside ``model.params()``.
    """
    with _off_rng_stream(x.device):
        guide_and_model_traces(model.model, model.guide, x, idx, num_data=num_data)
    return _param_names_and_tensors()


def _param_names_and_tensors() -> tuple[list[str], list[torch.Tensor]]:
    store = pyro.get_param_store()
    names = sorted(store.keys())
    return names, [store.get_param(n).unconstrained() for n in names]


def _make_optimizer(config: TrainConfig, names: list[str], params: list[torch.Tensor],
                    scale_names: tuple[str, ...]) -> torch.optim.Optimizer:
    """One optimiser; the likelihood's scale parameters at ``scale_lr_factor * lr``."""
    from vaelik.inference.optimizers import make_optimizer, param_groups

    groups = param_groups(names, params, scale_names, lr=config.lr,
                          scale_lr=config.lr * config.scale_lr_factor)
    return make_optimizer(config.optimizer, groups, lr=config.lr)


class Trainer:
    """The inner training step of :func:`fit`, set up once; ``benchmarks/run.py`` drives it too.

    Set-up (call inside ``model.params()``): one trace of guide and model creates
    every parameter and, for a JIT ELBO, the loss is recorded, both under
    ``torch.random.fork_rng`` so that set-up never consumes the training RNG
    stream (resume stays bit-exact); then one optimiser over all parameters, the
    likelihood's scale parameters (``likelihood.scale_params()``) in a param group
    of their own at ``scale_lr_factor * lr``.
    A step is ``elbo.differentiable_loss(model, guide, x[idx], idx, num_data=N)``,
    ``backward()`` and ``optimizer.step()``. The model and guide are bound once:
    a bound method is a new object on every attribute access, and Pyro's
    ``JitTrace_ELBO`` keys its compiled function on ``id(model)``, so passing
    ``model.model`` afresh each step made it re-trace whenever the id changed.

    Parameters
    ----------
    config : TrainConfig
        ``elbo``, ``optimizer``, ``lr``, ``scale_lr_factor`` and ``batch_size`` are used.
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
        self.names, self.params = create_params(model, x_train[idx0], idx0, self.n)
        if config.elbo.startswith("jit"):  # record once now, off the training RNG stream
            with _off_rng_stream(device), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", message=".*torch.jit.*")
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                self.loss(idx0)
        self.optimizer = _make_optimizer(config, self.names, self.params,
                                         model.likelihood.scale_params())

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



class NonFiniteLoss(DivergenceError):
    """The ELBO became non-finite during :func:`train_epochs`.

    ``reason`` says where (epoch and step) and the last finite values; the
    message adds what to try (:data:`DIVERGENCE_ADVICE`).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason + DIVERGENCE_ADVICE)
        self.reason = reason


def _divergence(epoch: int, step: int, rows: list[dict[str, Any]], where: str = "") -> NonFiniteLoss:
    """The error for a non-finite loss at ``epoch``/``step`` after the metric ``rows`` so far.

    It names the epoch and step where the loss stopped being finite (``where`` says
    if it was found elsewhere, e.g. in the end-of-epoch metrics) and the last finite
    values: the train ELBO, recon and KL of the last epoch.
    """
    last = [r for r in rows if r["split"] == "train"]
    if last:
        r = last[-1]
        finite = (f"last finite train ELBO {r['elbo']:.4g} (recon {r['recon']:.4g}, "
                  f"kl {r['kl']:.4g}) at epoch {r['epoch']}")
    else:
        finite = "no epoch finished before it"
    at = f"epoch {epoch}, step {step}" + (f" ({where})" if where else "")
    return NonFiniteLoss(f"ELBO diverged (non-finite) at {at}; {finite}")


def epoch_metrics(model: Model, x: torch.Tensor, seed: int) -> dict[str, float]:
    """:func:`~vaelik.inference.terms.split_metrics` with the z draws of a fixed ``seed``.

    Common random numbers: every epoch evaluates a split with the same noise
    (the same standard-normal draws behind z ~ q(z|x)), so the change of the
    one-sample ELBO from one epoch to the next is the change of the parameters,
    not Monte Carlo noise (on the digits the noise alone moved the validation
    ELBO by about 0.3 nats per point between epochs). The draws come from a
    forked RNG: the metrics consume nothing of the training's random stream.
    """
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return split_metrics(model, x)


def progress_bar(first: int, last: int, *, early_stopping: bool, desc: str | None = None,
                 disable: bool = False):
    """The per-epoch progress bar of :func:`train_epochs` (tqdm, on stderr).

    Its total is ``last`` (``--epochs``) and it starts at ``first - 1`` (a resumed
    run), so tqdm's rate and time left count only the epochs of this process.
    With ``early_stopping`` the run may end sooner: the bar says "at most" for the
    total and the time left (:data:`BAR_AT_MOST`), which are then upper bounds.
    """
    from tqdm.auto import tqdm

    return tqdm(range(first, last + 1), desc=desc, disable=disable, leave=False, unit="epoch",
                initial=first - 1, total=last,
                bar_format=BAR_AT_MOST if early_stopping else BAR_EXACT)


def progress_postfix(epoch_rows: dict[str, dict[str, Any]],
                     stopper: EarlyStopping | None = None) -> dict[str, str]:
    """What the bar shows after an epoch: its validation ELBO (else test), the scale, the best epoch.

    ``epoch_rows`` maps a split to the epoch's row; the scale is that row's
    (the learned σ or b, the RMS of per-dimension or predicted scales); ``best``
    is the early-stopping best epoch when there is a validation split.
    """
    split = "val" if "val" in epoch_rows else "test"
    row = epoch_rows[split]
    postfix = {f"{split}_elbo": f"{row['elbo']:.2f}"}
    if row.get("scale") is not None:
        postfix["scale"] = f"{row['scale']:.4g}"
    if stopper is not None and split == "val" and stopper.best_epoch:
        postfix["best"] = str(stopper.best_epoch)
    return postfix


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, imported now.

    Raises
    ------
    InputError
        The ``tensorboard`` package is not installed (the one line says how to get it).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError(f"--tensorboard needs the tensorboard package, which is not installed; "
                         f"pip install '{TENSORBOARD_EXTRA}' (or drop --tensorboard)") from None
    return SummaryWriter


def tensorboard_writer(log_dir: str | os.PathLike):
    """A ``SummaryWriter`` that writes event files into ``log_dir`` (:func:`require_tensorboard`)."""
    return require_tensorboard()(log_dir=os.fspath(log_dir))


def write_scalars(writer, rows: list[dict[str, Any]]) -> None:
    """Write metric ``rows`` (those of ``metrics.csv``) as TensorBoard scalars, then flush.

    Each number of a row becomes the scalar ``"{split}/{column}"`` at step
    ``epoch`` (e.g. ``val/elbo``, ``train/scale``, ``test/seconds``); a missing
    scale (a family without one) is left out.
    """
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "split") or value is None:
                continue
            writer.add_scalar(f"{row['split']}/{key}", float(value), global_step=int(row["epoch"]))
    writer.flush()


def train_epochs(
    trainer: Trainer,
    model: Model,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    gen: torch.Generator,
    *,
    first: int,
    last: int,
    rows: list[dict[str, Any]],
    x_val: torch.Tensor | None = None,
    stopper: EarlyStopping | None = None,
    schedule: Schedule | None = None,
    on_epoch: Callable[[int, list[dict[str, Any]]], None] | None = None,
    progress: bool = False,
    desc: str | None = None,
    metrics_seed: int = 0,
    tensorboard: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Train epochs ``first .. last`` (1-based, inclusive) or until early stopping; return the rows.

    Each epoch draws one permutation of the training rows from ``gen``, takes
    ``N // batch_size`` full-batch steps (the plate scale N/B stays fixed:
    JIT-safe) and appends one row per split (``train``, ``val`` when ``x_val``
    has rows, ``test``) to ``rows`` with the epoch's :func:`epoch_metrics`
    (the same z draws every epoch) and its seconds. Then
    ``stopper`` records the validation ELBO (and keeps the best parameters),
    ``schedule`` sets the rates of the next epoch, and ``on_epoch(epoch, rows)``
    runs (the caller writes its files, with the stopper's and the schedule's
    state). The loop ends after ``last`` or after the epoch at which ``stopper``
    says stop; it runs no epoch when ``stopper`` has stopped already (a resumed
    run that had stopped). Call inside ``model.params()``, with the RNG state
    the epochs should consume.

    Parameters
    ----------
    trainer : Trainer
        The step, set up on ``x_train``.
    model : Model
        The model ``trainer`` trains (for the end-of-epoch metrics).
    x_train, x_test : torch.Tensor
        The splits on the device, shapes ``(N, d)`` and ``(N_test, d)``.
    gen : torch.Generator
        The CPU generator of the batch permutations.
    first, last : int
        The epochs to run (``first > last``: none).
    rows : list of dict
        Rows of earlier epochs (a resumed run); extended in place.
    x_val : torch.Tensor, optional
        The validation split on the device, ``(N_val, d)``; None or no rows: none.
    stopper : EarlyStopping, optional
        Early stopping on the validation ELBO and the best parameters.
    schedule : Schedule, optional
        The learning-rate schedule, stepped after every epoch.
    on_epoch : callable, optional
        Called after each epoch with the epoch number and all rows.
    progress : bool
        Show a progress bar on stderr (``desc`` its label; :func:`progress_bar`):
        epochs done of ``last``, the epoch's validation ELBO (test ELBO without a
        validation split), the scale, the best epoch, and tqdm's time left ("at
        most" when early stopping may end the run sooner).
    metrics_seed : int
        The end-of-epoch metrics of the i-th split (train, val, test) use the
        same z draws every epoch, from seed ``metrics_seed + METRICS_SEED_OFFSET + i``
        (:func:`epoch_metrics`).
    tensorboard : path, optional
        Also write each epoch's rows as TensorBoard scalars into this folder
        (:func:`write_scalars`); the writer is opened at the first epoch. Needs
        the ``tensorboard`` package (:func:`require_tensorboard`).

    Returns
    -------
    list of dict
        ``rows``, with one more per split and epoch.

    Raises
    ------
    NonFiniteLoss
        A non-finite loss in a step (the optimiser did not step on it) or in the
        end-of-epoch metrics; ``rows`` then ends at the last finite epoch.
    """
    device = x_train.device
    n_train = x_train.shape[0]
    steps = n_train // trainer.batch  # full batches only: the plate scale N/B is fixed (JIT-safe)
    splits = [("train", x_train)]
    if x_val is not None and x_val.shape[0] > 0:
        splits.append(("val", x_val))
    splits.append(("test", x_test))
    if stopper is not None and stopper.stopped:
        first = last + 1
    early = stopper is not None and stopper.patience > 0 and len(splits) == 3
    bar = progress_bar(first, last, early_stopping=early, desc=desc, disable=not progress)
    writer = None
    try:
        for epoch in bar:
            tick = time.perf_counter()
            perm = torch.randperm(n_train, generator=gen).to(device)
            bad_step = trainer.run(perm, 0, steps)
            if bad_step is not None:
                raise _divergence(epoch, bad_step, rows)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - tick
            epoch_rows = {}
            for i, (split, x) in enumerate(splits):
                m = epoch_metrics(model, x, metrics_seed + METRICS_SEED_OFFSET + i)
                epoch_rows[split] = {"epoch": epoch, "split": split, **m, "seconds": seconds}
            if not all(math.isfinite(r["elbo"]) for r in epoch_rows.values()):
                raise _divergence(epoch, steps, rows, where="in the end-of-epoch metrics")
            rows.extend(epoch_rows.values())
            val_elbo = epoch_rows["val"]["elbo"] if "val" in epoch_rows else None
            stop = False
            if stopper is not None:
                stop = stopper.update(epoch, val_elbo, trainer.names, trainer.params)
            if schedule is not None:
                schedule.step(epoch, val_elbo)
            bar.set_postfix(progress_postfix(epoch_rows, stopper))
            if tensorboard is not None:
                if writer is None:
                    writer = tensorboard_writer(tensorboard)
                write_scalars(writer, list(epoch_rows.values()))
            if on_epoch is not None:
                on_epoch(epoch, rows)
            if stop:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return rows
