"""``--data-init standardise``: the encoder sees standardised inputs, the decoder starts at the mean.

Both sides computed: the standardised training data have mean 0 and the stated
variance per dimension; the decoded output of any z is the network's output
plus the family's raw location of the mean; an affine decoder's b read through
:meth:`Model.output_network` includes the offset; an old configuration reads as
``none`` and trains as before.
"""

from __future__ import annotations

import pytest
import torch

from vaelik.config import TrainConfig
from vaelik.inference.estimators import affine_decoder
from vaelik.inference.run import build

TINY = dict(data="ppca", data_options={"n": 300}, hidden_dim=16, latent_dim=3, epochs=1)


def test_encoder_input_is_standardised_with_a_variance_floor():
    data, model = build(TrainConfig(**TINY, likelihood="normal", scale="learned"))
    x = data.train
    var = x.var(0, unbiased=False)
    seen = model.encoder_input(x)
    torch.testing.assert_close(seen.mean(0), torch.zeros(x.shape[1]), atol=1e-5, rtol=0)
    # Var((x - m)/s) = v / (v + 0.01 v̄)
    torch.testing.assert_close(seen.var(0, unbiased=False), var / (var + 0.01 * var.mean()),
                               atol=1e-5, rtol=1e-4)


def test_a_constant_dimension_is_not_blown_up():
    # on the grey levels as they are (dequantised, the blank corners would vary a little)
    data, model = build(TrainConfig(data="digits", hidden_dim=8, latent_dim=2, epochs=1,
                                    dequantise="none"))
    constant = data.train.var(0) == 0  # the blank corners of the digits
    assert constant.any()
    scale = model.x_scale[constant]
    assert torch.all(scale >= 0.09 * data.train.var(0, unbiased=False).mean().sqrt())


@pytest.mark.parametrize(("likelihood", "scale", "expected"), [
    ("normal", "learned", lambda m: m),
    ("laplace", "predicted", lambda m: m),  # the raw scales (second half) get no offset
    ("bernoulli", None, lambda m: torch.logit(m.clamp(1e-3, 1 - 1e-3))),
])
def test_decode_adds_the_families_raw_location_of_the_mean(likelihood, scale, expected):
    data, model = build(TrainConfig(data="digits", hidden_dim=8, latent_dim=2, epochs=1,
                                    likelihood=likelihood, scale=scale))
    z = torch.randn(5, 2)
    d = data.dim
    offset = model.decode(z) - model.decoder(z)
    torch.testing.assert_close(offset[:, :d], expected(data.train.mean(0)).expand(5, d))
    assert torch.all(offset[:, d:] == 0)


def test_continuous_bernoulli_has_no_offset():
    _, model = build(TrainConfig(data="digits", hidden_dim=8, latent_dim=2, epochs=1,
                                 likelihood="cbernoulli"))
    assert model.out_offset is None and model.x_shift is not None


def test_affine_decoder_reads_b_with_the_offset():
    data, model = build(TrainConfig(**TINY, model="linear", likelihood="normal", scale="learned"))
    w, b = affine_decoder(model.output_network(), model.latent_dim, torch.device("cpu"))
    head = model.decoder.head
    torch.testing.assert_close(b, (head.bias + data.train.mean(0)).double().detach())
    torch.testing.assert_close(w, head.weight.double().detach())


def test_none_and_old_configs_leave_the_data_raw():
    _, model = build(TrainConfig(**TINY, data_init="none"))
    assert model.x_shift is None and model.out_offset is None
    x = torch.randn(4, 20)
    assert torch.equal(model.encoder_input(x), x)
    old = TrainConfig.from_stored({k: v for k, v in TrainConfig(**TINY).to_dict().items()
                                   if k != "data_init"})
    assert old.data_init == "none"
