r"""Final evaluation of a fitted model: ``eval.json`` and the other analysis files.

The importance-sampled log-likelihood is the IWAE bound (Burda et al., 2016)

.. math::
    \log p(x) \gtrsim \log \frac1K \sum_{k=1}^K
        \frac{p(x \mid z_k)\,p(z_k)}{q(z_k \mid x)}, \qquad z_k \sim q(z \mid x),

computed in chunks of samples and rows with a running log-sum-exp, so memory is
bounded by the chunk sizes, not by K × N. With a Bayesian scale each of S draws
σ_s ~ q(σ) gets K/S samples and the S estimates are averaged in probability
(a posterior-predictive estimate); otherwise the K samples are split into S
groups whose log-mean-exp is exactly the K-sample estimate.

The mutual information of the aggregate posterior (Hoffman & Johnson, 2016) is

.. math::
    I_q(x; z) = \mathbb E_{x}\mathbb E_{q(z\mid x)}\Big[\log q(z \mid x)
        - \log \tfrac1N \textstyle\sum_j q(z \mid x_j)\Big],

estimated with one z per x over at most 2,000 test points.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import torch
import torch.distributions as tdist

from vaelik.inference.config import TrainConfig
from vaelik.inference.data import Dataset
from vaelik.inference.terms import elbo_terms, scale_summary
from vaelik.models import AE, VAE, LinearVAE
from vaelik.rundir import (
    EVAL_FILE,
    IMAGES_FILE,
    METRICS_FILE,
    PER_DIM_COLUMNS,
    PER_DIM_FILE,
    POINTWISE_COLUMNS,
    POINTWISE_FILE,
    POSTERIOR_FILE,
    EvalRecord,
    atomic_write_bytes,
    read_csv,
    write_csv,
    write_json,
)
from vaelik.rundir.posterior import build_run_data, save_run_data

__all__ = ["evaluate_model", "iwae_log_px", "mutual_information", "active_units", "ppca_check"]

#: IWAE draws stored in posterior.nc (see docs/run-directory.md); ArviZ 1.x PSIS needs >= 25
IWAE_DRAWS = 100
#: bound on the number of floats of one decoder output chunk (K_chunk × rows × d)
CHUNK_FLOATS = 2**23
MI_MAX_POINTS = 2000


def _global_scale(vae: VAE, x: torch.Tensor) -> torch.Tensor | None:
    """The scale passed to ``observation`` (fixed/learned/per-dim value; None otherwise)."""
    lik = vae.likelihood
    if getattr(lik, "scale_mode", "none") == "bayesian":
        return None
    return lik.model_scale(vae.data_dim, x)


def _bayes_scale_q(vae: VAE, x: torch.Tensor) -> tdist.Distribution | None:
    import pyro

    if getattr(vae.likelihood, "scale_mode", "none") != "bayesian":
        return None
    loc = pyro.param("scale_q_loc").detach()
    sd = pyro.param("scale_q_sd").detach()
    return tdist.LogNormal(loc, sd)


@torch.no_grad()
def iwae_log_px(
    vae: VAE,
    x: torch.Tensor,
    num_samples: int = 1000,
    draws: int = IWAE_DRAWS,
    chunk_floats: int = CHUNK_FLOATS,
    scale_draws: torch.Tensor | None = None,
) -> torch.Tensor:
    """IWAE estimates of :math:`\\log p(x_n)`, shape ``(draws, n)``.

    ``logmeanexp`` over the first axis is the ``num_samples``-sample estimate.
    Call inside ``vae.params()``. Peak memory is about ``chunk_floats`` floats
    per decoder output, whatever K and n are. With a Bayesian scale, draw ``s``
    uses ``scale_draws[s]`` (sampled from the guide if not given).
    """
    draws = max(1, min(draws, num_samples))
    q_scale = _bayes_scale_q(vae, x)
    if q_scale is not None and scale_draws is None:
        scale_draws = q_scale.sample((draws,))
    per_draw = [num_samples // draws + (1 if i < num_samples % draws else 0) for i in range(draws)]
    n, d = x.shape
    rows = max(1, min(n, chunk_floats // max(1, d)))
    out = torch.empty(draws, n, device=x.device)
    prior = tdist.Normal(x.new_zeros(()), x.new_ones(()))
    # argument/support validation re-checks every (K_chunk, rows, d) decoder output: two extra
    # full passes per chunk (~15% of the estimate's time); the inputs were checked when loaded
    with pyro.validation_enabled(False):
        _iwae_chunks(vae, x, per_draw, rows, chunk_floats, prior, scale_draws, out)
    return out


def _iwae_chunks(vae, x, per_draw, rows, chunk_floats, prior, scale_draws, out) -> None:
    n, d = x.shape
    for r0 in range(0, n, rows):
        xb = x[r0 : r0 + rows]
        loc, sd = vae.encode(xb)
        q = tdist.Normal(loc, sd)
        k_chunk = max(1, chunk_floats // (xb.shape[0] * d * vae.likelihood.output_multiplier()))
        scale = _global_scale(vae, xb)
        for s, k_total in enumerate(per_draw):
            if scale_draws is not None:
                scale = scale_draws[s]
            acc = torch.full((xb.shape[0],), -math.inf, device=x.device)
            for k0 in range(0, k_total, k_chunk):
                k = min(k_chunk, k_total - k0)
                z = q.sample((k,))  # (k, rows, latent)
                log_w = prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
                obs = vae.likelihood.observation(vae.decoder(z), scale, xb)
                log_w = log_w + obs.log_prob(xb)
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
            out[s, r0 : r0 + rows] = acc - math.log(k_total)


@torch.no_grad()
def mutual_information(loc: torch.Tensor, sd: torch.Tensor, max_points: int = MI_MAX_POINTS) -> float:
    """Sampled :math:`I_q(x; z)` of the aggregate posterior over (up to) ``max_points`` rows.

    ``loc``, ``sd``: the guide's :math:`q(z \\mid x_n)` parameters, shape ``(n, k)``.
    """
    loc, sd = loc[:max_points], sd[:max_points]
    if bool((sd == 0).all()):
        return math.nan  # a Delta guide has no density
    z = tdist.Normal(loc, sd).sample()  # (n, k)
    log_q_own = tdist.Normal(loc, sd).log_prob(z).sum(-1)
    # log q(z_i | x_j) for all pairs, then log-mean-exp over j
    cross = tdist.Normal(loc.unsqueeze(0), sd.unsqueeze(0)).log_prob(z.unsqueeze(1)).sum(-1)
    log_agg = torch.logsumexp(cross, dim=1) - math.log(loc.shape[0])
    return float((log_q_own - log_agg).mean())


@torch.no_grad()
def active_units(loc: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions with :math:`\\mathrm{Var}_x(\\mathbb E_q[z_i]) >` threshold.

    ``loc``: :math:`\\mathbb E_q[z \\mid x_n]` for every example, shape ``(n, k)``.
    """
    return int((loc.var(dim=0) > threshold).sum())


@torch.no_grad()
def ppca_check(vae: LinearVAE, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
    r"""Compare a linear Normal VAE with Tipping & Bishop's closed form (DESIGN C8).

    ``sigma2_ml`` is the mean of the d − k smallest eigenvalues of the training
    covariance; ``exact_log_px`` is the learned linear-Gaussian model's exact
    :math:`\log \mathcal N(x; b, WW^\top + \sigma^2 I)` per test point;
    ``ml_log_px`` is the same for the closed-form ML solution.
    """
    d, k = vae.data_dim, vae.latent_dim
    xd = train.double()
    mean = xd.mean(0)
    cov = (xd - mean).T @ (xd - mean) / xd.shape[0]
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    sigma2_ml = float(evals[: d - k].mean()) if k < d else 0.0
    scale = vae.likelihood.model_scale(d, train)
    sigma2 = float(scale.double().pow(2).mean())
    w = vae.decoder.head.weight.double()  # (d, k)
    b = vae.decoder.head.bias.double()
    learned = tdist.MultivariateNormal(b, w @ w.T + sigma2 * torch.eye(d, dtype=torch.float64))
    top = evecs[:, d - k :]
    cov_ml = top @ torch.diag(evals[d - k :] - sigma2_ml) @ top.T + sigma2_ml * torch.eye(
        d, dtype=torch.float64
    )
    ml = tdist.MultivariateNormal(mean, cov_ml)
    return {
        "sigma2_learned": sigma2,
        "sigma2_ml": sigma2_ml,
        "exact_log_px": float(learned.log_prob(test.double()).mean()),
        "ml_log_px": float(ml.log_prob(test.double()).mean()),
    }


def _obs_mean(vae: VAE, z: torch.Tensor, scale) -> torch.Tensor:
    out = vae.decoder(z)
    like = out[..., : vae.data_dim]
    if scale is None and getattr(vae.likelihood, "scale_mode", "none") == "bayesian":
        scale = torch.ones((), device=z.device)
    return vae.likelihood.observation(out, scale, like).mean


@torch.no_grad()
def evaluate_model(
    vae: VAE,
    data: Dataset,
    config: TrainConfig,
    run_dir: str | Path | None = None,
    num_samples: int | None = None,
) -> EvalRecord:
    """Evaluate on the test split; write ``eval.json``, ``pointwise.csv``, ``per_dim.csv``,
    ``images.npz`` and ``posterior.nc`` if ``run_dir`` is given.

    Call inside ``vae.params()``. Returns the ``eval.json`` dictionary (keys:
    :class:`vaelik.rundir.EvalRecord`, documented in ``docs/run-directory.md``).
    """
    tick = time.perf_counter()
    device = next(vae.parameters()).device
    x = data.test.to(device)
    n, d = x.shape
    lik = vae.likelihood
    num_samples = num_samples or config.iwae_samples
    terms = elbo_terms(vae, x)
    scale_mode = getattr(lik, "scale_mode", "none")

    recon = terms.recon
    kl = terms.kl + terms.global_kl / n
    mse = float(terms.sq_err.mean())
    mae = float(terms.abs_err.mean())
    bce = float(terms.bce.mean())
    scale_value = scale_summary(terms.scale)
    if scale_mode == "bayesian":
        q = _bayes_scale_q(vae, x)
        scale_value = float(q.mean)
    per_dim_scale = None
    if terms.scale is not None and terms.scale.dim() >= 1:
        s = terms.scale if terms.scale.dim() == 1 else terms.scale.pow(2).mean(0).sqrt()
        per_dim_scale = s.tolist()

    comparable, reason = lik.is_normalised_on(x)
    scale_draws = None
    if isinstance(vae, AE):
        log_px_draws = None
        comparable, reason = False, "deterministic encoder (Delta guide): no importance-sampled log p(x)"
        log_px = math.nan
    else:
        q_scale = _bayes_scale_q(vae, x)
        scale_draws = q_scale.sample((min(IWAE_DRAWS, num_samples),)) if q_scale is not None else None
        log_px_draws = iwae_log_px(vae, x, num_samples, scale_draws=scale_draws)
        log_px_each = torch.logsumexp(log_px_draws, 0) - math.log(log_px_draws.shape[0])
        log_px = float(log_px_each.mean())
    bits = -log_px / (d * math.log(2)) if math.isfinite(log_px) else math.nan

    mse_at_mean = float((x - _obs_mean(vae, terms.z_loc, _global_scale(vae, x))).pow(2).mean())
    scales_all = torch.as_tensor(per_dim_scale if per_dim_scale is not None else
                                 ([scale_value] if scale_value is not None else []))
    at_bound = int((scales_all <= lik.min_scale * 1.01).sum()) if scales_all.numel() else 0
    entropy = -log_px
    c7_own = entropy - d / 2 * math.log(2 * math.pi * math.e * mse) if mse > 0 else math.nan

    # the family's facts, with its line and scale ratio evaluated at this run's scale
    facts = lik.facts(d=d, scale=scale_value, loss={"mse": mse, "mae": mae, "bce": bce}.get(lik.loss_name))
    evaluation: EvalRecord = {
        "elbo": float((recon - kl).mean()),
        "recon": float(recon.mean()),
        "kl": float(kl.mean()),
        "mse": mse,
        "mae": mae,
        "bce": bce,
        "mse_at_mean_z": mse_at_mean,
        "log_px": log_px,
        "log_px_samples": num_samples if log_px_draws is not None else 0,
        "bits_per_dim": bits,
        "comparable": bool(comparable),
        "comparable_reason": reason,
        "likelihood": lik.name,
        "scale_mode": scale_mode,
        "loss_name": lik.loss_name,
        "point_estimate": lik.point_estimate,
        "scale": scale_value,
        "scale_per_dim": per_dim_scale,
        "min_scale": lik.min_scale if scale_value is not None else None,
        "scales_at_bound": at_bound,
        "scale_ratio": facts.scale_ratio,
        "family": facts.to_dict(),
        "active_units": active_units(terms.z_loc),
        "latent_dim": vae.latent_dim,
        "data_dim": d,
        "n_test": n,
        "mutual_info": mutual_information(terms.z_loc, terms.z_scale),
        "entropy_estimate": entropy,
        "entropy_method": (
            "cross-entropy -mean log p(x) of this run's IWAE estimate on the test split: "
            "an estimate (an upper bound) of H(x), not its true value"
        ),
        "c7_bound_own_entropy": c7_own,
        "seconds_eval": math.nan,  # set below, when everything else is done
    }
    if isinstance(vae, LinearVAE) and lik.name == "normal" and scale_mode in ("learned", "fixed", "optimal"):
        check = ppca_check(vae, data.train.to(device), x)
        check["elbo"] = evaluation["elbo"]
        evaluation["ppca"] = check
    evaluation["seconds_eval"] = time.perf_counter() - tick

    if run_dir is not None:
        run_dir = Path(run_dir)
        _write_files(run_dir, vae, data, x, terms, recon, kl, log_px_draws, per_dim_scale,
                     scale_value, scale_draws if log_px_draws is not None else None)
        if (run_dir / METRICS_FILE).exists():
            metrics = read_csv(run_dir / METRICS_FILE, ("split", "seconds"), numeric=False)
            evaluation["seconds_train"] = float(metrics.loc[metrics.split == "train", "seconds"].sum())
        write_json(run_dir / EVAL_FILE, evaluation)
    return evaluation


def _write_files(run_dir, vae, data, x, terms, recon, kl, log_px_draws, per_dim_scale,
                 scale_value, bayes_draws) -> None:
    n, d = x.shape
    lik = vae.likelihood
    loss_sum = lik.loss(x, terms.mean).sum(-1)
    log_px_each = (torch.logsumexp(log_px_draws, 0) - math.log(log_px_draws.shape[0])
                   if log_px_draws is not None else torch.full((n,), math.nan))
    pointwise = pd.DataFrame({
        "index": np.arange(n),
        "elbo": (recon - kl).cpu().numpy(),
        "recon": recon.cpu().numpy(),
        "kl": kl.cpu().numpy(),
        "log_px": log_px_each.cpu().numpy(),
        "loss_sum": loss_sum.cpu().numpy(),
        "sse": terms.sq_err.sum(-1).cpu().numpy(),
        "sae": terms.abs_err.sum(-1).cpu().numpy(),
        "bce_sum": terms.bce.sum(-1).cpu().numpy(),
    })
    write_csv(run_dir / POINTWISE_FILE, pointwise, POINTWISE_COLUMNS)
    if per_dim_scale is not None:
        col = per_dim_scale
    elif scale_value is not None:
        col = [scale_value] * d
    else:
        col = [math.nan] * d
    write_csv(run_dir / PER_DIM_FILE, pd.DataFrame({
        "dim": np.arange(d),
        "scale": col,
        "mse": terms.sq_err.mean(0).cpu().numpy(),
        "mae": terms.abs_err.mean(0).cpu().numpy(),
    }), PER_DIM_COLUMNS)
    show, loc = x[:32], terms.z_loc[:32]
    scale = _global_scale(vae, show)
    z_prior = torch.randn(32, vae.latent_dim, device=x.device)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        originals=show.cpu().numpy(),
        reconstructions=_obs_mean(vae, loc, scale).cpu().numpy(),
        prior_samples=_obs_mean(vae, z_prior, scale).cpu().numpy(),
        image_shape=np.asarray(data.image_shape or (), dtype=np.int64),
    )
    atomic_write_bytes(run_dir / IMAGES_FILE, buffer.getvalue())
    if log_px_draws is not None:
        # a Bayesian scale has a posterior: its draws; any other scale is a point
        # estimate and is stored as one number, not as repeated "draws"
        posterior = build_run_data(
            log_px_draws.cpu().numpy(), x.cpu().numpy(),
            bayes_draws.cpu().numpy() if bayes_draws is not None else None,
            scale_point=scale_value if bayes_draws is None else None,
            scale_mode=getattr(lik, "scale_mode", "none"),
        )
        save_run_data(posterior, run_dir / POSTERIOR_FILE)
