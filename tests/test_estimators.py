r"""Estimators from Pyro traces (:mod:`vaelik.inference.estimators`) against closed forms.

The linear-Gaussian model :math:`z \sim \mathcal N(0, I_k)`,
:math:`x \mid z \sim \mathcal N(Wz + b, \sigma^2 I_d)` has the exact marginal
:math:`p(x) = \mathcal N(x; b, WW^\top + \sigma^2 I)` and the exact posterior
:math:`q^*(z \mid x) = \mathcal N(M^{-1}W^\top(x - b), \sigma^2 M^{-1})` with
:math:`M = W^\top W + \sigma^2 I`. With orthogonal columns of W, M is diagonal,
so the diagonal-Normal guide can *be* the exact posterior; then every importance
weight :math:`p(x, z)/q^*(z \mid x)` equals p(x) and the IWAE estimate is exact
to float tolerance, whatever K, the chunking or the Monte Carlo draws. With a
wrong guide the estimate lies below log p(x) (Jensen) and approaches it as K grows.

The last tests show that a network is one builder registered in ``NETWORKS``:
a small convolutional network defined here is fitted and scored end to end.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from vaelik.inference import TrainConfig, fit
from vaelik.inference.estimators import (
    affine_decoder,
    draw_globals,
    iwae_log_px,
    log_weights,
    model_sites,
    observation_mean,
)
from vaelik.inference.evaluate import ppca_check
from vaelik.models import MODELS, NETWORKS, Model, ModelSpec, build_model, get_likelihood

D, K, N = 6, 2, 40
SIGMA = 0.4
f64 = torch.float64


class AffineDecoder(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(b.clone())

    def forward(self, z):
        return z @ self.w.T + self.b


class PosteriorEncoder(nn.Module):
    """q(z|x) = N(A(x - b), diag s²): the exact posterior when A, s are set from W, σ."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, sd: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b, self.sd = nn.Parameter(a), nn.Parameter(b.clone()), nn.Parameter(sd)

    def forward(self, x):
        loc = (x - self.b) @ self.a.T
        return loc, self.sd.expand_as(loc)


def linear_gaussian(loc_shift: float = 0.0, sd_factor: float = 1.0, scale=SIGMA, **lik_kwargs):
    """The model, its exact marginal and data; the guide is exact for shift 0 and factor 1."""
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(D, K, generator=g, dtype=f64))
    w = q * torch.tensor([2.0, 0.7], dtype=f64)  # orthogonal columns: M is diagonal
    b = torch.randn(D, generator=g, dtype=f64)
    m_diag = (w * w).sum(0) + SIGMA**2
    a = (w / m_diag).T  # M⁻¹ Wᵀ, (K, D)
    sd = (SIGMA**2 / m_diag).sqrt() * sd_factor
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D, dtype=f64))
    x = marginal.sample((N,))
    encoder = PosteriorEncoder(a, b + loc_shift, sd)
    lik = get_likelihood("normal", scale=scale, **lik_kwargs)
    model = Model(lik, encoder, AffineDecoder(w, b), "normal", data_dim=D, latent_dim=K)
    return model, marginal.log_prob(x), x, (w, b)


def test_exact_guide_gives_every_weight_equal_to_the_exact_log_px():
    model, exact, x, _ = linear_gaussian()
    with model.params():
        log_w = log_weights(model, x, 7)
        assert log_w.shape == (7, N)
        assert_close(log_w, exact.expand(7, N), rtol=0, atol=1e-10)
        # chunked over rows and particles, split into unequal groups: still exact
        draws = iwae_log_px(model, x, num_samples=50, draws=4, chunk_floats=3 * D)
    assert draws.shape == (4, N)
    assert_close(draws, exact.expand(4, N), rtol=0, atol=1e-10)


def test_wrong_guide_underestimates_and_approaches_as_k_grows():
    model, exact, x, _ = linear_gaussian(loc_shift=0.3, sd_factor=1.6)
    reps = 20  # each row scored 20 times: 800 independent estimates per K
    x, exact = x.repeat(reps, 1), exact.repeat(reps)
    gaps, ses = {}, {}
    with model.params():
        pyro.set_rng_seed(0)
        for k in (1, 10, 100, 1000):
            est = torch.logsumexp(iwae_log_px(model, x, k, draws=1), 0)  # the K-sample IWAE
            gap = exact - est
            gaps[k], ses[k] = float(gap.mean()), float(gap.std() / math.sqrt(len(gap)))
    # K = 1 is the ELBO: its expected gap is KL(q || exact posterior), in closed form
    with torch.no_grad():
        loc_q, sd_q = model.encode(x[:1])
        sd_p = model.encoder.sd / 1.6
        loc_p = loc_q + model.encoder.a @ torch.full((D,), 0.3, dtype=f64)
        kl = float(torch.distributions.kl_divergence(torch.distributions.Normal(loc_q[0], sd_q[0]),
                                                     torch.distributions.Normal(loc_p[0], sd_p)).sum())
    assert abs(gaps[1] - kl) < 4 * ses[1], (gaps[1], kl, ses[1])
    for k in gaps:  # E[estimate] <= log p(x): the mean gap is not negative beyond MC noise
        assert gaps[k] > -3 * ses[k], (k, gaps[k], ses[k])
    assert gaps[1] > gaps[10] > gaps[100] > gaps[1000]
    assert gaps[1000] < 0.1 * gaps[1]


def test_bayesian_scale_is_drawn_from_the_guide_and_shared_per_group():
    """A Bayesian σ with q(σ) concentrated at SIGMA scores as the fixed-σ model."""
    model, exact, x, _ = linear_gaussian(scale="bayesian")
    with model.params():
        store = pyro.get_param_store()
        pyro.param("scale_q_loc", torch.tensor(0.0, dtype=f64))
        pyro.param("scale_q_sd", torch.tensor(0.1, dtype=f64), constraint=torch.distributions.constraints.positive)
        store["scale_q_loc"] = torch.tensor(math.log(SIGMA), dtype=f64)
        store["scale_q_sd"] = torch.tensor(1e-9, dtype=f64)
        s = model_sites(model, x)
        assert s.global_latent == ["scale"] and s.local_latent == ["z"] and s.observed == ["x"]
        globals_ = draw_globals(model, x, 5)
        assert globals_["scale"].shape == (5,)
        with pytest.raises(ValueError, match="need a value in condition"):
            log_weights(model, x, 3)
        draws = iwae_log_px(model, x, num_samples=20, draws=5)
        # a σ far from the data's: the group of that draw scores its own p(x | σ)
        far = {"scale": torch.tensor([SIGMA, 3 * SIGMA], dtype=f64)}
        two = iwae_log_px(model, x, num_samples=8, draws=2, global_draws=far)
    assert_close(draws, exact.expand(5, N), rtol=0, atol=1e-6)
    assert_close(two[0], exact, rtol=0, atol=1e-6)
    assert float(two[1].mean()) < float(exact.mean()) - 1  # a wrong σ scores worse on average


def test_observation_mean_and_affine_parts_come_from_the_model():
    model, _, x, (w, b) = linear_gaussian()
    z = torch.randn(5, K, dtype=f64)
    with model.params():
        assert_close(observation_mean(model, {"z": z}, x), z @ w.T + b)
        parts = affine_decoder(model.decoder, K, x.device)
        check = ppca_check(model, x, x)
    assert parts is not None
    assert_close(parts[0], w, rtol=0, atol=1e-12)
    assert_close(parts[1], b, rtol=0, atol=1e-12)
    assert check["sigma2_learned"] == pytest.approx(SIGMA**2)
    exact = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D, dtype=f64))
    assert check["exact_log_px"] == pytest.approx(float(exact.log_prob(x).mean()), rel=1e-12)
    # an MLP with a hidden layer is not affine: no pPCA parts
    mlp = build_model("vae", get_likelihood("normal", scale=0.3), D, K, 8)
    assert affine_decoder(mlp.decoder, K, x.device) is None


def test_a_point_mass_guide_has_no_iwae():
    model = build_model("ae", get_likelihood("normal", scale=0.3), D, K, 8)
    x = torch.rand(4, D)
    with model.params():
        assert model_sites(model, x).point_mass
        with pytest.raises(ValueError, match="point-mass"):
            iwae_log_px(model, x, 4)


# ------------------------------------------------------------------------------------------
# A network is one builder: a small convolutional network for the 8 × 8 digits


class ConvEncoder(nn.Module):
    def __init__(self, data_shape, latent_dim, channels):
        super().__init__()
        self.shape, self.k = tuple(data_shape)[-2:], latent_dim  # (C, H, W) with C = 1
        self.conv = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        h, w = (self.shape[0] + 1) // 2, (self.shape[1] + 1) // 2
        self.head = nn.Linear(channels * h * w, 2 * latent_dim)

    def forward(self, x):
        h = F.relu(self.conv(x.reshape(-1, 1, *self.shape))).flatten(1)
        out = self.head(h)
        return out[..., : self.k], F.softplus(out[..., self.k :]) + 1e-5


class ConvDecoder(nn.Module):
    def __init__(self, data_shape, latent_dim, out_multiplier, channels):
        super().__init__()
        self.shape, self.m, self.c = tuple(data_shape)[-2:], out_multiplier, channels
        self.h, self.w = self.shape[0] // 2, self.shape[1] // 2
        self.fc = nn.Linear(latent_dim, channels * self.h * self.w)
        self.deconv = nn.ConvTranspose2d(channels, out_multiplier, 4, stride=2, padding=1)

    def forward(self, z):
        lead = z.shape[:-1]
        h = F.relu(self.fc(z.reshape(-1, z.shape[-1]))).reshape(-1, self.c, self.h, self.w)
        return self.deconv(h).reshape(*lead, -1)  # (..., m, H, W) flattened channel-major


def build_conv(data_shape, latent_dim, out_multiplier, *, hidden_dim=8):
    """The NETWORKS contract: (encoder, decoder) for images of ``data_shape``."""
    channels = max(1, hidden_dim // 4)
    return (ConvEncoder(data_shape, latent_dim, channels),
            ConvDecoder(data_shape, latent_dim, out_multiplier, channels))


def test_conv_network_obeys_the_shape_contract():
    enc, dec = build_conv((8, 8), 3, 2, hidden_dim=8)
    loc, scale = enc(torch.rand(5, 64))
    assert loc.shape == scale.shape == (5, 3) and bool((scale > 0).all())
    assert dec(torch.randn(7, 5, 3)).shape == (7, 5, 2 * 64)


@pytest.mark.parametrize("scale", ["learned", "predicted", "bayesian"])
def test_a_registered_network_is_fitted_and_scored(monkeypatch, tmp_path, scale):
    monkeypatch.setitem(NETWORKS, "tiny-conv", build_conv)
    monkeypatch.setitem(MODELS, "conv-vae", ModelSpec("VAE with a tiny conv net", network="tiny-conv"))
    config = TrainConfig(data="digits", model="conv-vae", network="tiny-conv",
                         likelihood="normal", scale=scale,
                         epochs=2, hidden_dim=8, latent_dim=3, batch_size=256, iwae_samples=16)
    result = fit(config, out=tmp_path / "run", progress=False)
    assert isinstance(result.model.encoder, ConvEncoder)
    ev = result.evaluation
    assert math.isfinite(ev["log_px"]) and math.isfinite(ev["elbo"]) and ev["log_px_samples"] == 16
    assert ev["log_px"] > ev["elbo"] - 5  # IWAE with 16 samples is not far below the ELBO
    assert "ppca" not in ev  # a conv decoder is not affine
    assert (tmp_path / "run" / "images.npz").exists()
