"""What a checkpoint holds, and putting it back: parameters, optimiser state, RNG states.

A checkpoint is a dict of tensors, numbers and strings only (it loads with
``torch.load(weights_only=True)``; writing and reading the file is
this module too, atomically through :mod:`vaelik.rundir`): ``format``, ``config`` (the configuration as
sorted JSON), ``epoch``, ``params`` (the unconstrained Pyro parameters by name),
``optimizer`` (its ``state_dict``), ``rng`` (every RNG a fit draws from),
``metrics`` (the rows so far), ``best`` (the early-stopping state with the best
epoch's parameters, :class:`~vaelik.inference.stopping.EarlyStopping`) and
``schedule`` (the learning-rate schedule's state) and ``fingerprint`` (the run's
fingerprint as JSON, :mod:`vaelik.rundir.fingerprint`; absent in checkpoints
written before it existed). Restoring all of them makes a
resumed fit bit-identical to an uninterrupted one. ``params`` are the *last*
epoch's (a resume continues from them); the fitted model that
:func:`~vaelik.inference.run.load_fitted` and ``vaelik evaluate`` use has the
*best* epoch's (:func:`fitted_params`). Checkpoints written before ``best``
existed lack it and the last parameters are the fitted ones.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from vaelik.errors import InputError
from vaelik.inference.config import TrainConfig
from vaelik.inference.schedules import Schedule
from vaelik.inference.stopping import EarlyStopping
from vaelik.rundir import atomic_write_bytes

__all__ = ["CHECKPOINT_KEYS", "checkpoint_problem", "fitted_params", "load_checkpoint",
           "load_params", "make_checkpoint", "optimizer_mismatch", "params_mismatch", "restore",
           "rng_problem", "rng_state", "save_checkpoint", "set_rng_state", "training_summary"]

FORMAT = 1
#: keys every vaelik checkpoint holds
CHECKPOINT_KEYS = frozenset({"config", "epoch", "params", "optimizer", "rng", "metrics"})


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save tensors/primitives only, atomically (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"no checkpoint at {path}: the run never finished an epoch or the file was removed; "
            "start it again with --overwrite"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        first = (str(e).splitlines() or [type(e).__name__])[0].split(". ")[0][:160]
        raise InputError(
            f"checkpoint {path} is corrupt or truncated ({first}); start the run again with "
            "--overwrite"
        ) from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
        raise InputError(
            f"checkpoint {path} is not a vaelik checkpoint; start the run again with --overwrite"
        )
    problem = checkpoint_problem(state)
    if problem:
        raise InputError(f"checkpoint {path} is damaged ({problem}); start the run again with "
                         "--overwrite")
    return state


def _tensors(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rng_problem(rng: Any) -> str | None:
    """Why ``rng`` is not a state :func:`set_rng_state` can put back (None if it is).

    Each state is tried on a fresh generator of its kind, so the process's
    own RNGs are left as they are.
    """
    import numpy as np

    if not isinstance(rng, dict):
        return "its RNG state is not a mapping"
    try:
        torch.Generator().set_state(rng["torch"])
        torch.Generator().set_state(rng["batches"])
        gauss = rng.get("python_gauss")
        if not (gauss is None or _number(gauss)):
            raise TypeError("python_gauss is not a number")
        random.Random().setstate((3, tuple(int(v) for v in rng["python"]), gauss))
        if "numpy" in rng:
            n = rng["numpy"]
            np.random.RandomState().set_state(
                ("MT19937", n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                 int(n["has_gauss"]), float(n["cached"])))
        if "cuda" in rng and not (isinstance(rng["cuda"], (list, tuple))
                                  and all(isinstance(t, torch.Tensor) for t in rng["cuda"])):
            raise TypeError("cuda is not a list of tensors")
    except Exception as e:  # noqa: BLE001 - whatever is wrong with it, it cannot be put back
        return f"its RNG state cannot be restored: {type(e).__name__}"
    return None


def checkpoint_problem(state: dict[str, Any]) -> str | None:
    """Why a loaded checkpoint cannot be used by resume or evaluate (None if it can).

    Checks the kinds of every entry :func:`restore`, :func:`fitted_params` and
    :func:`training_summary` read: ``config`` text, ``epoch`` a count, ``params``
    tensors by name, ``optimizer`` a ``state_dict``, ``rng`` restorable
    (:func:`rng_problem`), ``metrics`` a list of rows, ``best`` and
    ``schedule`` (where present) of the kinds their ``state_dict`` writes.
    """
    if not isinstance(state["config"], str):
        return "config is not text"
    if not (isinstance(state["epoch"], int) and not isinstance(state["epoch"], bool)
            and state["epoch"] >= 0):
        return f"epoch is {state['epoch']!r}, not a count"
    if not _tensors(state["params"]):
        return "params are not tensors by name"
    opt = state["optimizer"]
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
            and isinstance(opt.get("param_groups"), list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                    for g in opt["param_groups"])):
        return "optimizer is not a torch state_dict"
    if not (isinstance(state["metrics"], list) and all(isinstance(r, dict) for r in state["metrics"])):
        return "metrics are not a list of rows"
    best = state.get("best")
    if best is not None:
        if not (isinstance(best, dict) and all(_number(best.get(k)) or best.get(k) is None
                                               for k in ("epoch", "elbo"))
                and all(_number(best.get(k)) for k in ("bad_epochs", "stopped", "has_params"))
                and isinstance(best.get("params"), dict)):
            return "its early-stopping state is damaged"
        if best["has_params"] and not _tensors(best["params"]):
            return "its best parameters are not tensors by name"
    schedule = state.get("schedule")
    if schedule is not None and not (isinstance(schedule, dict)
                                     and all(_number(v) for v in schedule.values())):
        return "its learning-rate schedule state is damaged"
    return rng_problem(state["rng"])


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    """The state of every RNG a fit may draw from, as tensors and numbers only.

    Those ``pyro.set_rng_seed`` seeds (torch, CUDA where present, Python's
    ``random`` with its cached Gaussian, numpy) and ``gen``, the batch
    generator; loadable with ``torch.load(weights_only=True)``.
    """
    import numpy as np

    python = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "batches": gen.get_state(),
             "python": list(python[1]), "python_gauss": python[2],
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    """Put back the RNG states that :func:`rng_state` captured."""
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


def make_checkpoint(config: TrainConfig, names: list[str], params: list[torch.Tensor],
                    optimizer: torch.optim.Optimizer, gen: torch.Generator, epoch: int,
                    rows: list[dict[str, Any]], *, stopper: EarlyStopping | None = None,
                    schedule: Schedule | None = None,
                    fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint after ``epoch``.

    Parameters ``names``/``params``, optimiser, RNGs, ``rows``, the states
    of ``stopper`` (key ``best``) and ``schedule``, and the run's ``fingerprint``
    (as JSON text) where given.
    """
    state = {
        "format": FORMAT,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "epoch": epoch,
        "params": {n: p.detach().cpu().clone() for n, p in zip(names, params, strict=False)},
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(gen),
        "metrics": [dict(r) for r in rows],
    }
    if stopper is not None:
        state["best"] = stopper.state_dict()
    if schedule is not None:
        state["schedule"] = schedule.state_dict()
    if fingerprint is not None:
        state["fingerprint"] = json.dumps(fingerprint, sort_keys=True)
    return state


def fitted_params(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The fitted model's parameters: the best epoch's, else (no ``best`` kept) the last."""
    best = checkpoint.get("best")
    if best and best.get("has_params"):
        return best["params"]
    return checkpoint["params"]


def training_summary(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``best_epoch``, ``epochs_run`` and ``stopped_early`` of the run that wrote ``checkpoint``."""
    epochs_run = int(checkpoint["epoch"])
    best = checkpoint.get("best") or {}
    return {"best_epoch": int(best.get("epoch") or epochs_run), "epochs_run": epochs_run,
            "stopped_early": bool(best.get("stopped", False))}


def params_mismatch(stored: dict[str, torch.Tensor], names: list[str],
                    params: list[torch.Tensor]) -> str | None:
    """Why checkpoint tensors ``stored`` do not fit the model's parameters (None if they do)."""
    if sorted(stored) != names:
        return "checkpoint parameters do not match the model"
    for n, p in zip(names, params, strict=False):
        if stored[n].shape != p.shape:
            return (f"checkpoint parameter {n} has shape {tuple(stored[n].shape)}, "
                    f"the model {tuple(p.shape)}")
    return None


def optimizer_mismatch(stored: dict[str, Any], optimizer: torch.optim.Optimizer) -> str | None:
    """Why the checkpoint's optimiser state ``stored`` does not fit ``optimizer`` (None if it does).

    A checkpoint written before the likelihood's scale parameters had a param group
    of their own (``--scale-lr-factor``) holds one group where the optimiser has two.
    """
    saved = stored.get("param_groups") if isinstance(stored, dict) else None
    if not isinstance(saved, list):
        return "checkpoint optimiser state is not a torch state_dict"
    shape = [len(g["params"]) for g in optimizer.param_groups]
    if [len(g.get("params", ())) for g in saved] == shape:
        return None
    if len(saved) == 1 and len(shape) > 1:
        return ("checkpoint was written before the scale parameters had a learning rate of "
                "their own (--scale-lr-factor)")
    return "checkpoint optimiser state does not match the model's parameter groups"


def _moments_mismatch(stored: dict[str, Any], params: list[torch.Tensor]) -> str | None:
    """Why the optimiser's per-parameter state (Adam's moments) does not fit ``params``."""
    for index, entry in stored["state"].items():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(entry, dict)):
            return "checkpoint optimiser state names parameters the model does not have"
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor):
                if not _number(value):
                    return f"checkpoint optimiser state {key} is not a number"
                continue
            if value.dim() > 0 and value.shape != params[index].shape:
                return (f"checkpoint optimiser state {key} has shape {tuple(value.shape)}, "
                        f"its parameter {tuple(params[index].shape)}")
    return None


def load_params(stored: dict[str, torch.Tensor], names: list[str],
                params: list[torch.Tensor]) -> None:
    """Copy the checkpoint tensors ``stored`` into the parameters (in place, on their device)."""
    with torch.no_grad():
        for n, p in zip(names, params, strict=False):
            p.copy_(stored[n].to(p.device))


def restore(checkpoint: dict[str, Any], names: list[str], params: list[torch.Tensor],
            optimizer: torch.optim.Optimizer, gen: torch.Generator, *,
            stopper: EarlyStopping | None = None, schedule: Schedule | None = None) -> None:
    """Put parameters, optimiser, RNG, early-stopping and schedule states back (checked first).

    A checkpoint without ``best`` or ``schedule`` (written before they existed)
    leaves ``stopper`` and ``schedule`` as they are.
    """
    mismatch = params_mismatch(checkpoint["params"], names, params)
    best = checkpoint.get("best")
    if not mismatch and best and best.get("has_params"):
        mismatch = params_mismatch(best["params"], names, params)
    if mismatch:
        raise InputError(f"{mismatch}; refusing to resume")
    mismatch = optimizer_mismatch(checkpoint["optimizer"], optimizer) or _moments_mismatch(
        checkpoint["optimizer"], [p for g in optimizer.param_groups for p in g["params"]])
    if mismatch:
        raise InputError(f"{mismatch}; refusing to resume (start the run again with --overwrite)")
    try:
        load_params(checkpoint["params"], names, params)
        optimizer.load_state_dict(checkpoint["optimizer"])
        set_rng_state(checkpoint["rng"], gen)
        if stopper is not None and best:
            stopper.load_state_dict(best)
        if schedule is not None and "schedule" in checkpoint:
            schedule.load_state_dict(checkpoint["schedule"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        first = (str(e).splitlines() or [""])[0][:120]
        raise InputError(f"checkpoint states cannot be restored ({type(e).__name__}: {first}); "
                         "refusing to resume (start the run again with --overwrite)") from None
