r"""Per-example ELBO terms, losses and scales of a fitted model, from Pyro traces.

For each example, one z is drawn from the guide and the model is replayed on it:

.. math::
    \mathrm{recon}_n = \log p(x_n \mid z_n),\quad z_n \sim q(z \mid x_n), \qquad
    \mathrm{kl}_n = \mathrm{KL}(q(z \mid x_n) \,\|\, p(z))

(analytic where torch has the KL, else the one-sample estimate
:math:`\log q(z_n) - \log p(z_n)`), summed over the latent sites inside the
data plate. A global latent (the Bayesian scale) adds
:math:`\mathrm{KL}(q(\sigma)\|p(\sigma))` once for the whole data set. Sites
are found by their role in the traces, not by name.
The losses (MSE, MAE, BCE) are those of the *mean of the observation
distribution* at the same :math:`z_n` (``.mean``: ``loc`` for Normal/Laplace,
``probs`` for Bernoulli, the true mean for the Continuous Bernoulli).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch

from vaelik.inference.elbo import guide_and_model_traces, kl_or_estimate
from vaelik.inference.estimators import CHUNK_FLOATS, floats_per_particle, sites
from vaelik.models import Model, bce_loss, mae_loss, mse_loss

__all__ = ["Terms", "shared_scale_tril", "elbo_terms", "metric_rows", "per_dim_errors", "split_metrics", "scale_summary",
           "compact_scale"]

#: the most rows of one chunk of the per-epoch metrics (fewer where the networks are wider: :func:`metric_rows`)
METRIC_ROWS = 8192


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
    #: the global latent site whose drawn value is the observation's scale (a Bayesian σ)
    scale_site: str | None = None
    #: the guide's q(g) of that site, or None
    scale_posterior: torch.distributions.Distribution | None = None
    #: (n, d) the family's equivalent loss per element (``Likelihood.observed_loss``)
    loss: torch.Tensor | None = None
    #: (k, k) the shared Cholesky factor of a guide with one full covariance, else None
    z_scale_tril: torch.Tensor | None = None


def _sum(terms: list[torch.Tensor], zero: torch.Tensor) -> torch.Tensor:
    total = None
    for term in terms:
        total = term if total is None else total + term
    return zero if total is None else total


@torch.no_grad()
def elbo_terms(model: Model, x: torch.Tensor) -> Terms:
    """Compute :class:`Terms` for all rows of ``x`` in one pass (call inside ``model.params()``).

    Sites are found by role (:func:`vaelik.inference.estimators.sites`): the KL
    sums over the local latent sites, ``global_kl`` over the global ones,
    ``recon`` is the one observed site's log density; ``z_loc``, ``z_scale`` are
    the mean and standard deviation of the guide's (first) local latent site.
    """
    guide_tr, model_tr = guide_and_model_traces(model.model, model.guide, x)
    s = sites(guide_tr, model_tr)
    kl = _sum([kl_or_estimate(guide_tr.nodes[n]["fn"], model_tr.nodes[n]["fn"],
                              guide_tr.nodes[n]["value"]) for n in s.local_latent],
              x.new_zeros(x.shape[0]))
    global_kl = _sum([kl_or_estimate(guide_tr.nodes[n]["fn"], model_tr.nodes[n]["fn"],
                                     guide_tr.nodes[n]["value"]).sum() for n in s.global_latent],
                     x.new_zeros(()))
    obs = s.observed_site()["fn"]
    mean = obs.mean
    base = getattr(obs, "base_dist", obs)
    scale = getattr(base, "scale", None)
    scale_site = None
    if scale is not None:
        scale = compact_scale(scale, x.shape)
        scale_site = _scale_site(s, scale)
    # the guide's q(z|x) from the same trace (no second encoder pass): Normal, or a Delta (AE)
    q_z = guide_tr.nodes[s.local_latent[0]]["fn"]
    return Terms(
        recon=obs.log_prob(x),
        kl=kl,
        global_kl=global_kl,
        sq_err=mse_loss(x, mean),
        abs_err=mae_loss(x, mean),
        bce=bce_loss(x, mean),
        mean=mean,
        scale=scale,
        z_loc=q_z.mean,
        z_scale=q_z.stddev,
        scale_site=scale_site,
        scale_posterior=guide_tr.nodes[scale_site]["fn"] if scale_site else None,
        loss=model.likelihood.observed_loss(obs, x),
        z_scale_tril=shared_scale_tril(q_z),
    )


def shared_scale_tril(q: torch.distributions.Distribution) -> torch.Tensor | None:
    """The one ``(k, k)`` Cholesky factor of a multivariate Normal q(z|x) shared by every x, else None."""
    if not isinstance(q, torch.distributions.MultivariateNormal):
        return None
    tril = q.scale_tril
    return tril.reshape(-1, *tril.shape[-2:])[0]


def _scale_site(s, scale: torch.Tensor) -> str | None:
    """The global latent site whose drawn value is the observation's scale, if any."""
    for name in s.global_latent:
        value = s.model_trace.nodes[name]["value"]
        if value.shape == scale.shape and torch.equal(value, scale):
            return name
    return None


def compact_scale(scale: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a broadcast scale to its true shape: () global, (d,) per-dim, or (n, d)."""
    if scale.numel() == 1:  # a global scale kept unbroadcast: nothing to compare
        return scale.reshape(-1)[0]
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


def metric_rows(model: Model, d: int) -> int:
    """Rows per chunk of the metrics: :data:`METRIC_ROWS`, or fewer so that no tensor passes ``CHUNK_FLOATS``.

    The widest tensor per row is the decoder's (:func:`~vaelik.inference.estimators.floats_per_particle`):
    784-d MLP rows keep 8,192 rows a chunk; the conv VAE of ``--hidden-dim 64`` on
    28 × 28 (6,272-float feature maps) takes 1,337.
    """
    return max(1, min(METRIC_ROWS, CHUNK_FLOATS // floats_per_particle(model, d)))


@torch.no_grad()
def per_dim_errors(model: Model, x: torch.Tensor, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-dimension mean squared and absolute error of the observation mean on ``x``.

    .. math:: \mathrm{MSE}_j = \frac1n \sum_n (x_{nj} - \hat x_{nj})^2, \qquad
              \mathrm{MAE}_j = \frac1n \sum_n |x_{nj} - \hat x_{nj}|

    with :math:`\hat x_n` the mean of :math:`p(x \mid z_n)` at one draw
    :math:`z_n \sim q(z \mid x_n)`, as in :func:`elbo_terms`; rows in chunks of
    ``chunk``. On the training split these are what a per-dimension scale is fitted
    to (C3: :math:`\sigma_j^2 \to \mathrm{MSE}_j`). Returns two tensors of shape ``(d,)``.
    """
    n, d = x.shape
    chunk = chunk or metric_rows(model, d)
    sq = torch.zeros(d, dtype=torch.float64, device=x.device)
    ab = torch.zeros(d, dtype=torch.float64, device=x.device)
    for start in range(0, n, chunk):
        t = elbo_terms(model, x[start : start + chunk])
        sq += t.sq_err.double().sum(0)
        ab += t.abs_err.double().sum(0)
    return sq / n, ab / n


def split_metrics(model: Model, x: torch.Tensor, chunk: int | None = None) -> dict[str, float]:
    r"""Per-data-point ``elbo, recon, kl`` and per-element ``mse, mae, bce``, ``scale`` on ``x``.

    ``x`` is processed in chunks of ``chunk`` rows (default :func:`metric_rows`) to bound memory; with
    ``scale="optimal"`` the scale is the ML value of each chunk; a scale that is
    a global latent (Bayesian) is reported as its posterior mean :math:`\mathbb E_q[\sigma]`.
    Distribution validation is off here (it only reads: the numbers are the same):
    the data were checked when loaded, and re-checking every chunk's
    ``(rows, d)`` decoder outputs and data cost ~6 % of a 784-d epoch.
    """
    n = x.shape[0]
    chunk = chunk or metric_rows(model, x.shape[1])
    sums = torch.zeros(5, dtype=torch.float64, device=x.device)
    sq_scale = torch.zeros((), dtype=torch.float64, device=x.device)
    has_scale = False
    global_kl = None
    posterior = None
    for start in range(0, n, chunk):
        with pyro.validation_enabled(False):
            t = elbo_terms(model, x[start : start + chunk])
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
        posterior = t.scale_posterior
    recon, kl, mse, mae, bce = (sums[:5] / n).tolist()
    kl += float(global_kl) / n
    if posterior is not None:
        scale = float(posterior.mean.detach())
    else:
        scale = float(sq_scale.div(n).sqrt()) if has_scale else None
    return {
        "elbo": recon - kl,
        "recon": recon,
        "kl": kl,
        "mse": mse,
        "mae": mae,
        "bce": bce,
        "scale": scale,
    }
