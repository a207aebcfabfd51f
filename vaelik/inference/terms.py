r"""Per-example ELBO terms, losses and scales of a fitted model, from Pyro traces.

For each example, one z is drawn from the guide and the model is replayed on it:

.. math::
    \mathrm{recon}_n = \log p(x_n \mid z_n),\quad z_n \sim q(z \mid x_n), \qquad
    \mathrm{kl}_n = \mathrm{KL}(q(z \mid x_n) \,\|\, p(z))

(analytic where torch has the KL, else the one-sample estimate
:math:`\log q(z_n) - \log p(z_n)`). A global latent (the Bayesian scale) adds
:math:`\mathrm{KL}(q(\sigma)\|p(\sigma))` once for the whole data set.
The losses (MSE, MAE, BCE) are those of the *mean of the observation
distribution* at the same :math:`z_n` (``.mean``: ``loc`` for Normal/Laplace,
``probs`` for Bernoulli, the true mean for the Continuous Bernoulli).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaelik.inference.elbo import guide_and_model_traces, kl_or_estimate
from vaelik.models import VAE, bce_loss, mae_loss, mse_loss

__all__ = ["Terms", "elbo_terms", "split_metrics", "scale_summary"]


@dataclass
class Terms:
    """Per-example quantities of one pass (tensors of shape ``(n,)`` unless stated)."""

    recon: torch.Tensor
    kl: torch.Tensor
    global_kl: torch.Tensor  # scalar, counted once per data set
    sq_err: torch.Tensor  # (n, d)
    abs_err: torch.Tensor  # (n, d)
    bce: torch.Tensor  # (n, d)
    mean: torch.Tensor  # (n, d) mean of p(x|z)
    scale: torch.Tensor | None  # () global, (d,) per-dim, (n, d) predicted, or None
    z_loc: torch.Tensor  # (n, k)
    z_scale: torch.Tensor  # (n, k)


@torch.no_grad()
def elbo_terms(vae: VAE, x: torch.Tensor) -> Terms:
    """Compute :class:`Terms` for all rows of ``x`` in one pass (call inside ``vae.params()``)."""
    guide_tr, model_tr = guide_and_model_traces(vae.model, vae.guide, x)
    z_site, z_prior = guide_tr.nodes["z"], model_tr.nodes["z"]
    kl = kl_or_estimate(z_site["fn"], z_prior["fn"], z_site["value"])
    global_kl = x.new_zeros(())
    if "scale" in guide_tr.nodes and guide_tr.nodes["scale"]["type"] == "sample":
        q, p = guide_tr.nodes["scale"]["fn"], model_tr.nodes["scale"]["fn"]
        global_kl = kl_or_estimate(q, p, guide_tr.nodes["scale"]["value"]).sum()
    obs = model_tr.nodes["x"]["fn"]
    mean = obs.mean
    base = getattr(obs, "base_dist", obs)
    scale = getattr(base, "scale", None)
    if scale is not None:
        scale = _compact_scale(scale, x.shape)
    # the guide's q(z|x) from the same trace (no second encoder pass): Normal, or a Delta (AE)
    q_z = getattr(z_site["fn"], "base_dist", z_site["fn"])
    z_loc = q_z.mean
    z_scale = getattr(q_z, "scale", None)
    if z_scale is None:
        z_scale = torch.zeros_like(z_loc)
    return Terms(
        recon=obs.log_prob(x),
        kl=kl,
        global_kl=global_kl,
        sq_err=mse_loss(x, mean),
        abs_err=mae_loss(x, mean),
        bce=bce_loss(x, mean),
        mean=mean,
        scale=scale,
        z_loc=z_loc,
        z_scale=z_scale,
    )


def _compact_scale(scale: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a broadcast scale to its true shape: () global, (d,) per-dim, or (n, d)."""
    scale = scale.expand(shape)
    if bool((scale == scale.reshape(-1)[0]).all()):
        return scale.reshape(-1)[0]
    if bool((scale == scale[:1]).all()):
        return scale[0]
    return scale


def scale_summary(scale: torch.Tensor | None) -> float | None:
    """The global scale, or the root-mean-square of per-dimension / predicted scales."""
    if scale is None:
        return None
    return float(scale.pow(2).mean().sqrt())


def split_metrics(vae: VAE, x: torch.Tensor, chunk: int = 8192) -> dict[str, float]:
    """Per-data-point ``elbo, recon, kl`` and per-element ``mse, mae, bce``, ``scale`` on ``x``.

    ``x`` is processed in chunks of ``chunk`` rows to bound memory; with
    ``scale="optimal"`` the scale is the ML value of each chunk.
    """
    n = x.shape[0]
    sums = torch.zeros(5, dtype=torch.float64, device=x.device)
    sq_scale = torch.zeros((), dtype=torch.float64, device=x.device)
    has_scale = False
    global_kl = None
    for start in range(0, n, chunk):
        t = elbo_terms(vae, x[start : start + chunk])
        rows = t.recon.shape[0]
        sums += torch.stack(
            [
                t.recon.sum(),
                t.kl.sum(),
                t.sq_err.mean(-1).sum(),
                t.abs_err.mean(-1).sum(),
                t.bce.mean(-1).sum(),
            ]
        ).double()
        if t.scale is not None:
            has_scale = True
            sq_scale += t.scale.double().pow(2).mean() * rows
        global_kl = t.global_kl
    recon, kl, mse, mae, bce = (sums[:5] / n).tolist()
    kl += float(global_kl) / n
    return {
        "elbo": recon - kl,
        "recon": recon,
        "kl": kl,
        "mse": mse,
        "mae": mae,
        "bce": bce,
        "scale": _bayes_scale_mean(vae) if _is_bayesian(vae) else (
            float(sq_scale.div(n).sqrt()) if has_scale else None),
    }


def _is_bayesian(vae: VAE) -> bool:
    return getattr(vae.likelihood, "scale_mode", "none") == "bayesian"


def _bayes_scale_mean(vae: VAE) -> float:
    """Posterior mean of a Bayesian scale, E_q[σ] = exp(m + s²/2) for q = LogNormal(m, s)."""
    import pyro

    loc, sd = pyro.param("scale_q_loc").detach(), pyro.param("scale_q_sd").detach()
    return float(torch.exp(loc + sd.pow(2) / 2))
