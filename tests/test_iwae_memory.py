r"""Bounded memory of the importance-sampled log p(x): the chunk size bounds the largest tensor.

:func:`vaelik.inference.estimators.iwae_log_px` splits the K particles and the n
rows into chunks so that one decoder output has at most ``chunk_floats`` floats
(:data:`~vaelik.inference.estimators.CHUNK_FLOATS` by default). Here every tensor
that a torch function returns inside the estimate is recorded (a
``TorchFunctionMode``): none is larger than the chunk (the networks' hidden
layers are narrower than d), while K·n·d is far larger. And the chunking changes
the arithmetic's grouping, never the result: on a model whose guide is the exact
posterior every weight is exactly log p(x), and a tiny chunk gives the large
chunk's estimate to float64 round-off.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.testing import assert_close

from vaelik.inference.estimators import CHUNK_FLOATS, iwae_log_px
from vaelik.models import Model, build_model, get_likelihood

f64 = torch.float64


class LargestTensor(TorchFunctionMode):
    """Record the largest tensor (number of elements) returned by any torch function."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _mlp_vae(d: int = 64, hidden: int = 32, latent: int = 4) -> tuple[Model, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("vae", get_likelihood("normal", scale="learned", init_scale=0.3), d,
                        latent, hidden)
    x = torch.rand(20, d)
    with model.params():  # create the parameters
        pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    return model, x


def test_default_chunk_is_32_mib_of_float32():
    assert CHUNK_FLOATS * 4 == 32 * 2**20


@pytest.mark.parametrize("chunk", [256, 2000])
def test_the_chunk_bounds_the_largest_tensor_of_the_estimate(chunk):
    model, x = _mlp_vae()
    n, d = x.shape
    k = 40
    with model.params():
        mode = LargestTensor()
        with mode:
            out = iwae_log_px(model, x, k, draws=4, chunk_floats=chunk)
        unchunked = LargestTensor()
        with unchunked:
            iwae_log_px(model, x, k, draws=4, chunk_floats=k * n * d)
    assert out.shape == (4, n) and torch.isfinite(out).all()
    assert mode.largest <= max(chunk, 4 * n), (mode.largest, chunk)  # (draws, n): the result
    assert unchunked.largest == k // 4 * n * d  # one group's decoder output at once
    assert unchunked.largest >= 5 * mode.largest


class _AffineDecoder(nn.Module):
    def __init__(self, w, b) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, z):
        return z @ self.w.T + self.b


class _PosteriorEncoder(nn.Module):
    def __init__(self, a, b, sd) -> None:
        super().__init__()
        self.a, self.b, self.sd = nn.Parameter(a), nn.Parameter(b), nn.Parameter(sd)

    def forward(self, x):
        loc = (x - self.b) @ self.a.T
        return loc, self.sd.expand_as(loc)


def _exact_linear_gaussian(d: int = 12, k: int = 3, n: int = 12, sigma: float = 0.4):
    r"""z ~ N(0, I), x | z ~ N(Wz + b, σ²I) with orthogonal W; the guide is the exact posterior."""
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=f64))
    w = q * torch.tensor([2.0, 1.0, 0.5], dtype=f64)
    b = torch.randn(d, generator=g, dtype=f64)
    m = (w * w).sum(0) + sigma**2
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(d, dtype=f64))
    x = marginal.sample((n,))
    encoder = _PosteriorEncoder((w / m).T, b.clone(), (sigma**2 / m).sqrt())
    model = Model(get_likelihood("normal", scale=sigma), encoder, _AffineDecoder(w, b.clone()),
                  "normal", data_dim=d, latent_dim=k)
    return model, x, marginal.log_prob(x)


def test_a_tiny_chunk_gives_the_large_chunk_estimate():
    model, x, exact = _exact_linear_gaussian()
    n, d = x.shape
    k, draws = 23, 5  # unequal groups (5, 5, 5, 4, 4), split again by the chunk
    with model.params():
        small_mode = LargestTensor()
        with small_mode:
            small = iwae_log_px(model, x, k, draws=draws, chunk_floats=2 * d)  # 2 rows, 2 particles
        large = iwae_log_px(model, x, k, draws=draws, chunk_floats=10 * k * n * d)
    assert small_mode.largest <= max(2 * d, draws * n)
    assert_close(small, large, rtol=0, atol=1e-10)
    assert_close(small, exact.expand(draws, n), rtol=0, atol=1e-10)
    assert math.isfinite(float(small.sum()))


def _conv_vae(hidden: int = 64, latent: int = 3) -> tuple[Model, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("vae", get_likelihood("normal", scale="learned", init_scale=0.3), 64, latent,
                        hidden, data_shape=(1, 8, 8), network="conv")
    x = torch.rand(20, 64)
    with model.params():
        pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    return model, x


@pytest.mark.parametrize(("shape", "hidden", "m"), [((1, 28, 28), 64, 1), ((1, 28, 28), 32, 2),
                                                     ((3, 32, 32), 64, 1), ((1, 8, 8), 32, 1)])
def test_conv_decoder_declares_its_widest_tensor(shape, hidden, m):
    from vaelik.models.networks.conv import build

    _, decoder = build(shape, 4, m, hidden_dim=hidden)
    widest = LargestTensor()
    with widest, torch.no_grad():
        decoder(torch.zeros(1, 4))
    assert decoder.floats_per_sample == widest.largest


def test_a_conv_feature_map_wider_than_the_output_stays_within_the_chunk():
    """The conv decoder's 32-channel 4 × 4 feature maps (512 floats) are wider than its output (d = 64)."""
    model, x = _conv_vae()
    n, d = x.shape
    assert model.decoder.floats_per_sample == 512 > d
    chunk = 4096
    with model.params():
        mode = LargestTensor()
        with mode:
            out = iwae_log_px(model, x, 40, draws=4, chunk_floats=chunk)
        whole = iwae_log_px(model, x, 40, draws=4, chunk_floats=100 * chunk)
    assert mode.largest <= chunk, mode.largest
    assert torch.isfinite(out).all()
    # the same estimator: the chunks change the draws, not what is estimated (40 particles each)
    assert_close(out.logsumexp(0).mean(), whole.logsumexp(0).mean(), rtol=0, atol=0.5)


def test_the_encoder_runs_once_per_chunk_of_rows_and_group():
    """A chunk holds a group's particles (up to CHUNK_PARTICLES): 4 groups of 10 over 2 row chunks."""
    model, x = _mlp_vae()
    n, d = x.shape
    calls = []
    hook = model.encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[-2]))
    try:
        with model.params():
            iwae_log_px(model, x, 40, draws=4, chunk_floats=10 * d * 10)  # 10 rows of 10 particles
    finally:
        hook.remove()
    assert calls == [1] + [10] * 8  # the pilot trace of one row, then (2 row chunks) x (4 groups)


def test_the_epoch_metrics_take_fewer_rows_for_wide_networks(monkeypatch):
    """``split_metrics``' default chunk keeps every tensor of a wide decoder within CHUNK_FLOATS."""
    from vaelik.inference import terms

    lik = get_likelihood("normal", scale="learned")
    mlp = build_model("vae", lik, 784, 16, 256)
    conv = build_model("vae", get_likelihood("normal", scale="learned"), 784, 16, 64, data_shape=(1, 28, 28),
                       network="conv")
    assert terms.metric_rows(mlp, 784) == terms.METRIC_ROWS == 8192  # 784 floats a row: unchanged
    rows = terms.metric_rows(conv, 784)
    assert rows * conv.decoder.floats_per_sample <= CHUNK_FLOATS < (rows + 1) * conv.decoder.floats_per_sample
    model, x = _conv_vae()  # 512-float feature maps, 20 rows
    monkeypatch.setattr(terms, "CHUNK_FLOATS", 2048)  # 4 rows a chunk
    assert terms.metric_rows(model, 64) == 4
    with model.params():
        bounded, whole = LargestTensor(), LargestTensor()
        with bounded:
            metrics = terms.split_metrics(model, x)
        with whole:
            terms.split_metrics(model, x, chunk=len(x))
    assert bounded.largest <= 2048 and whole.largest == 20 * 512
    assert all(math.isfinite(metrics[k]) for k in ("elbo", "recon", "kl", "mse"))
