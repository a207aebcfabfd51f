"""Synthetic run directories with planted answers (numpy only, no torch).

Every file follows docs/run-directory.md and is written through ``vaelik.rundir``
(file names, columns, status values, eval.json keys, the posterior file), as
``vaelik.inference`` writes it. Each builder returns the numbers it planted so a
test can compare what the analysis layer recovers with them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from vaelik.rundir import (
    CONFIG_FILE,
    EVAL_FILE,
    EVAL_KEYS,
    IMAGES_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    PER_DIM_COLUMNS,
    PER_DIM_FILE,
    POINTWISE_COLUMNS,
    POINTWISE_FILE,
    POSTERIOR_FILE,
    EvalRecord,
    Status,
    atomic_write_bytes,
    write_csv,
    write_json,
    write_status,
)
from vaelik.rundir.family import FamilyFacts
from vaelik.rundir.posterior import build_run_data, save_run_data

D = 16
IMAGE_SHAPE = (4, 4)
N_TEST = 40
DRAWS = 100
EPOCHS = 5
MIN_SCALE = 1e-3
ENTROPY = -10.0  # planted H(x) estimate, nats per point

FIXED_SIGMAS = (0.05, 0.1, 0.3, 1.0)
FIXED_MSE = {0.05: 0.004, 0.1: 0.006, 0.3: 0.015, 1.0: 0.05}  # increases with σ
FIXED_KL = {0.05: 30.0, 0.1: 22.0, 0.3: 9.0, 1.0: 1.5}  # decreases with σ
FIXED_AU = {0.05: 8, 0.1: 8, 0.3: 5, 1.0: 1}


#: The facts the built-in likelihood classes state (tests/test_likelihoods.py checks that
#: they are the classes' own), keyed by the likelihood name a fixture run uses.
FAMILY_FACTS = {
    "normal": FamilyFacts("normal", "Normal", "mse", "MSE", "sse", "SSE Σ(x−x̂)²", "σ", 2.0, "√MSE",
                          "σ²/MSE", True),
    "laplace": FamilyFacts("laplace", "Laplace", "mae", "MAE", "sae", "SAE Σ|x−x̂|", "b", 1.0, "MAE",
                           "b/MAE", True),
    "bernoulli": FamilyFacts("bernoulli", "Bernoulli", "bce", "BCE", "bce_sum",
                             "summed BCE −Σ[x log p + (1−x) log(1−p)]", affine=True,
                             discrete=True, levels=2),
    "continuous_bernoulli": FamilyFacts(
        "cbernoulli", "continuous Bernoulli", "bce", "BCE", "bce_sum",
        "summed BCE −Σ[x log p + (1−x) log(1−p)]", affine=False,
        line_reason="log p = -BCE + sum_j log C(lambda_j): the log-normaliser varies with lambda, "
                    "so recon is not a line in the summed BCE (R^2 < 1)"),
}

_NOT_GLOBAL = {"per_dim": "one scale per dimension", "predicted": "a scale predicted per point and dimension",
               "bayesian": "a scale that varies across posterior draws"}


def _run_facts(likelihood: str, scale_mode: str, scale_value, loss_value, slope, intercept) -> dict:
    """eval.json ``family``: the static facts with this run's line and ratio, as fitting writes them."""
    facts = FAMILY_FACTS[likelihood]
    ratio = facts.ratio(scale_value, loss_value) if facts.has_scale and scale_value else None
    if not facts.affine:
        line = {}
    elif facts.has_scale and scale_mode in _NOT_GLOBAL:
        line = {"line_reason": f"{_NOT_GLOBAL[scale_mode]}: recon is not a function of the summed loss alone"}
    else:
        line = {"line_slope": slope, "line_intercept": intercept}
    return facts.with_run(scale_ratio=ratio, **line).to_dict()


def _config(name: str, likelihood: str, scale, model: str = "vae", seed: int = 0,
            data: str = "synthetic-grey", binary: bool = False) -> dict:
    return {
        "name": name, "data": data,
        "data_info": {"name": data, "dim": D, "image_shape": list(IMAGE_SHAPE), "n_train": 160,
                      "n_test": N_TEST, "binary": binary, "scaling": "none", "params": {}},
        "likelihood": likelihood, "scale": scale, "min_scale": MIN_SCALE, "model": model,
        "latent_dim": 8, "hidden_dim": 32, "epochs": EPOCHS, "batch_size": 32, "lr": 0.001,
        "optimizer": "adam", "elbo": "meanfield", "seed": seed, "device": "cpu",
        "test_fraction": 0.2, "iwae_samples": 1000,
        "versions": {"vaelik": "0.1.0", "python": "3"},
    }


def _pointwise(rng: np.random.Generator, slope: float, intercept: float, mean_loss: float,
               extra: np.ndarray | None = None) -> pd.DataFrame:
    loss = mean_loss * D * rng.gamma(20.0, 1 / 20.0, size=N_TEST)
    recon = intercept + slope * loss
    if extra is not None:
        recon = recon + extra
    kl = rng.gamma(10.0, 1.0, size=N_TEST)
    return pd.DataFrame({
        "index": np.arange(N_TEST), "elbo": recon - kl, "recon": recon, "kl": kl,
        "log_px": recon - kl + 0.5, "loss_sum": loss, "sse": loss, "sae": loss, "bce_sum": loss,
    })


def make_run(root: Path, name: str, *, likelihood: str = "normal", scale="learned",
             scale_mode: str | None = None, sigma: float | None = 0.1, mse: float = 0.01,
             mae: float = 0.08, seed: int = 0, model: str = "vae", data: str = "synthetic-grey",
             kl: float = 12.0, active_units: int = 6, mutual_info: float | None = None,
             comparable: bool = True, status: str = Status.COMPLETED, per_dim_scale=None,
             per_dim_mse=None, per_dim_mse_train=None, scale_draws: np.ndarray | None = None, ppca: dict | None = None,
             pointwise: str = "affine", folder: Path | None = None, converged: bool | None = True,
             convergence_reasons: list[str] | None = None,
             scale_ratio_train: float | None = None) -> dict:
    """Write one run directory; return what was planted.

    ``converged=None`` writes an eval.json without the convergence keys (an older run
    directory); ``converged=False`` plants ``convergence_reasons`` (default: one).
    """
    rng = np.random.default_rng(abs(hash((name, seed))) % 2**32)
    run_dir = (folder or root) / name.replace("/", "_").replace("<", "_").replace(">", "_")
    run_dir.mkdir(parents=True)
    if scale_mode is None:
        scale_mode = "fixed" if isinstance(scale, (int, float)) else str(scale)
    fam = likelihood
    write_json(run_dir / CONFIG_FILE, _config(name, likelihood, scale, model, seed, data))
    # metrics.csv: the scale approaches its target over the epochs.
    rows = []
    for epoch in range(1, EPOCHS + 1):
        for split in ("train", "test"):
            shrink = 1 + 0.5 / epoch
            rows.append({
                "epoch": epoch, "split": split, "elbo": -50.0 + epoch, "recon": -40.0 + epoch,
                "kl": kl, "mse": mse * shrink, "mae": mae * shrink, "bce": 0.3,
                "scale": (sigma * shrink) if sigma is not None else np.nan, "seconds": 0.5,
            })
    write_csv(run_dir / METRICS_FILE, pd.DataFrame(rows), METRICS_COLUMNS)
    # pointwise.csv with a planted line
    planted: dict = {"run": name, "path": run_dir, "sigma": sigma, "mse": mse, "mae": mae}
    if fam == "normal" and sigma is not None:
        slope, intercept = -1 / (2 * sigma**2), -D / 2 * math.log(2 * math.pi * sigma**2)
        loss_mean = mse
    elif fam == "laplace" and sigma is not None:
        slope, intercept = -1 / sigma, -D * math.log(2 * sigma)
        loss_mean = mae
    else:
        slope, intercept, loss_mean = -1.0, 0.0, 0.3
    theory = (slope, intercept)  # the line the family states at this scale
    extra = None
    if pointwise == "noisy":  # not affine: per-dim scale, CB log-normaliser...
        extra = rng.normal(0.0, 2.0, size=N_TEST)
    elif pointwise == "arbitrary":  # a planted line unrelated to the theory
        slope, intercept = -3.25, 7.5
    pw = _pointwise(rng, slope, intercept, loss_mean, extra)
    write_csv(run_dir / POINTWISE_FILE, pw, POINTWISE_COLUMNS)
    planted.update(slope=slope, intercept=intercept)
    # per_dim.csv
    if per_dim_mse is None:
        per_dim_mse = np.full(D, mse)
    if per_dim_scale is None:
        per_dim_scale = np.full(D, np.nan if sigma is None else sigma)
    per_dim = pd.DataFrame({"dim": np.arange(D), "scale": per_dim_scale, "mse": per_dim_mse,
                            "mae": np.sqrt(per_dim_mse) * 0.8})
    if per_dim_mse_train is not None:  # a run that also wrote the training split's errors
        per_dim["mse_train"] = per_dim_mse_train
        per_dim["mae_train"] = np.sqrt(per_dim_mse_train) * 0.8
    write_csv(run_dir / PER_DIM_FILE, per_dim, PER_DIM_COLUMNS)
    # images.npz
    originals = rng.uniform(size=(8, D))
    buffer = io.BytesIO()
    np.savez(buffer, originals=originals,
             reconstructions=np.clip(originals + rng.normal(0, 0.1, size=(8, D)), 0, 1),
             prior_samples=rng.uniform(size=(6, D)), image_shape=np.array(IMAGE_SHAPE))
    atomic_write_bytes(run_dir / IMAGES_FILE, buffer.getvalue())
    # eval.json
    c7_bound = ENTROPY - D / 2 * math.log(2 * math.pi * math.e * mse)
    if mutual_info is None:  # consistent with the bound unless a test plants otherwise
        mutual_info = max(5.0, c7_bound + 1.0)
    scale_value = sigma
    if per_dim_scale is not None and scale_mode in ("per_dim", "predicted"):
        scale_value = float(np.sqrt(np.mean(np.asarray(per_dim_scale) ** 2)))
    # posterior.nc: draws of the scale only for a posterior (Bayesian), else a point estimate
    log_lik = pw["log_px"].to_numpy()[None, :] + rng.normal(0, 0.05, size=(DRAWS, N_TEST))
    point = scale_value if scale_draws is None else None
    save_run_data(build_run_data(log_lik, originals[:1].repeat(N_TEST, 0), scale_draws,
                                 scale_point=point, scale_mode=scale_mode),
                  run_dir / POSTERIOR_FILE)
    family = _run_facts(fam, scale_mode, scale_value, {"mse": mse, "mae": mae}.get(
        FAMILY_FACTS[fam].loss, 0.3), *theory)
    evaluation: EvalRecord = {
        "elbo": float(pw["elbo"].mean()), "recon": float(pw["recon"].mean()), "kl": kl,
        "mse": mse, "mae": mae, "bce": 0.3, "mse_at_mean_z": mse * 0.9,
        "log_px": float(pw["log_px"].mean()), "log_px_samples": 1000,
        "bits_per_dim": -float(pw["log_px"].mean()) / (D * math.log(2)),
        "comparable": comparable,
        "comparable_reason": "" if comparable else "Bernoulli on non-binary data is not a normalised density",
        "likelihood": likelihood, "scale_mode": scale_mode,
        "loss_name": {"normal": "mse", "laplace": "mae"}.get(fam, "bce"),
        "point_estimate": {"normal": "loc", "laplace": "loc", "bernoulli": "probs"}.get(fam, "mean"),
        "scale": scale_value,
        "scale_per_dim": None if scale_mode not in ("per_dim", "predicted") else list(map(float, per_dim_scale)),
        "min_scale": MIN_SCALE,
        "scales_at_bound": int(np.sum(np.asarray(per_dim_scale, float) <= 1.01 * MIN_SCALE))
        if scale_mode in ("per_dim", "predicted") else 0,
        "scale_ratio": family["scale_ratio"],
        "family": family,
        "active_units": active_units, "latent_dim": 8, "data_dim": D, "n_test": N_TEST,
        "mutual_info": mutual_info, "entropy_estimate": ENTROPY,
        "entropy_method": "planted test value",
        "c7_bound_own_entropy": c7_bound,
        "seconds_train": 10.0 + seed, "seconds_eval": 1.0,
    }
    if ppca is not None:
        evaluation["ppca"] = ppca
    if converged is not None:
        reasons = [] if converged else (convergence_reasons or [
            "training ELBO still rising by 2.5 nats/epoch over the last 5 epochs (> 0.05): raise --epochs"])
        evaluation.update(converged=converged, convergence_reasons=reasons, convergence_notes=[])
    if scale_ratio_train is not None:  # the ratio on the training split, as fitting writes it
        evaluation["scale_ratio_train"] = scale_ratio_train
    assert set(evaluation) <= set(EVAL_KEYS), set(evaluation) - set(EVAL_KEYS)
    write_json(run_dir / EVAL_FILE, evaluation)
    write_status(run_dir, status)
    planted["c7_bound_own_entropy"] = evaluation["c7_bound_own_entropy"]
    return planted


def ppca_block(*, sigma2_ratio: float, ml_log_px: float, elbo_below: float, sigma2_ml: float = 0.09,
               exact_log_px: float | None = None) -> dict:
    """eval.json ``ppca`` of a linear run: σ² = ``sigma2_ratio``·σ²_ML, ELBO ``elbo_below`` nats under ``ml_log_px``.

    ``exact_log_px`` (the learned parameters' exact log p(x)) defaults to just above the ELBO:
    a posterior that is nearly exact for parameters that may be far from the optimum.
    """
    elbo = ml_log_px - elbo_below
    return {"sigma2_learned": sigma2_ratio * sigma2_ml, "sigma2_ml": sigma2_ml,
            "exact_log_px": elbo + 0.01 if exact_log_px is None else exact_log_px,
            "ml_log_px": ml_log_px, "elbo": elbo}


def build_suite(root: Path) -> dict:
    """A sweep folder (runs one and two levels deep) with every case the report covers."""
    root.mkdir(parents=True, exist_ok=True)
    sweep = root / "sweep-a"
    p: dict = {}
    # C2: learned σ with σ²/MSE = 1.02 and 0.98 (held within 0.1)
    for seed, ratio in ((0, 1.02), (1, 0.98)):
        mse = 0.01
        p[f"normal-learned-s{seed}"] = make_run(
            sweep, f"normal-learned-s{seed}", sigma=math.sqrt(ratio * mse), mse=mse, seed=seed)
    # C4: Laplace learned b/MAE = 0.97
    p["laplace-learned-s0"] = make_run(sweep, "laplace-learned-s0", likelihood="laplace",
                                       sigma=0.97 * 0.08, mae=0.08, mse=0.012)
    # C3: per-dimension σ_j = RMSE_j, three dims constant (σ at the bound)
    rmse = np.linspace(0.05, 0.2, D)
    rmse[:3] = 0.0
    scale_j = np.where(rmse > 0, rmse, MIN_SCALE)
    p["normal-per_dim-s0"] = make_run(sweep, "normal-per_dim-s0", scale="per_dim", sigma=None,
                                      mse=float(np.mean(rmse**2)), per_dim_scale=scale_j,
                                      per_dim_mse=rmse**2, pointwise="noisy")
    p["normal-per_dim-s0"]["n_at_bound"] = 3
    # Bayesian σ with guide draws
    draws = np.random.default_rng(7).gamma(400.0, 0.1 / 400.0, size=DRAWS)
    p["normal-bayesian-s0"] = make_run(sweep, "normal-bayesian-s0", scale="bayesian",
                                       sigma=float(draws.mean()), scale_draws=draws,
                                       pointwise="noisy")
    p["normal-bayesian-s0"]["draws"] = draws
    # C5: Bernoulli on grey levels (not comparable), recon = -BCE exactly
    p["bernoulli-s0"] = make_run(sweep, "bernoulli-s0", likelihood="bernoulli", scale=None,
                                 scale_mode="none", sigma=None, comparable=False)
    p["cb-s0"] = make_run(sweep, "cb-s0", likelihood="continuous_bernoulli", scale=None,
                          scale_mode="none", sigma=None, pointwise="noisy")
    # C6: fixed σ series, deeper in the tree
    for s in FIXED_SIGMAS:
        name = f"normal-fixed-{s:g}"
        p[name] = make_run(root / "sweep-b" / "fixed", name, scale=s, sigma=s, mse=FIXED_MSE[s],
                           kl=FIXED_KL[s], active_units=FIXED_AU[s])
    # C8: linear VAE with the pPCA block
    p["linear-s0"] = make_run(root / "linear", "linear-s0", model="linear", data="ppca",
                              sigma=0.3, mse=0.09,
                              ppca=ppca_block(sigma2_ratio=1.02, ml_log_px=-19.95, elbo_below=0.15,
                                              exact_log_px=-20.0))
    # Not completed, and broken
    failed = root / "sweep-a" / "failed-run"
    failed.mkdir(parents=True)
    write_json(failed / CONFIG_FILE, _config("failed-run", "normal", "learned"))
    write_status(failed, Status.failed("loss was NaN at epoch 3"))
    broken = root / "sweep-a" / "broken-run"
    broken.mkdir()
    write_json(broken / CONFIG_FILE, _config("broken-run", "normal", "learned"))
    atomic_write_bytes(broken / EVAL_FILE, b"{not json")  # deliberately not JSON
    write_csv(broken / METRICS_FILE, pd.DataFrame({"epoch": [1], "split": ["test"]}))
    write_status(broken, Status.COMPLETED)
    return p
