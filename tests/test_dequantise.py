"""Dequantisation: continuous densities on grey levels, scored as a bound on the discrete mass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaelik.config import TrainConfig
from vaelik.errors import InputError
from vaelik.inference import fit, load_fitted
from vaelik.inference.data import load_data
from vaelik.inference.data.dequantise import (
    bits_correction,
    dequantise,
    dequantise_dataset,
    needs_dequantisation,
)
from vaelik.inference.evaluate import bits_per_dim_of
from vaelik.inference.run import build
from vaelik.models import get_likelihood
from vaelik.rundir import EVAL_FILE, read_eval

SMALL = {"epochs": 2, "data_options": {"n": 300}, "hidden_dim": 16, "iwae_samples": 8,
         "batch_size": 64}


# ----------------------------------------------------------------------------- the option

def test_option_default_absent_and_check():
    assert TrainConfig().dequantise == "auto"
    assert TrainConfig.from_stored({"data": "digits"}).dequantise == "none"  # an older run
    with pytest.raises(InputError, match="dequantise"):
        TrainConfig(dequantise="always").check()


def test_needs_dequantisation_table():
    assert needs_dequantisation("auto", 256, discrete=False)
    assert not needs_dequantisation("auto", 256, discrete=True)
    assert not needs_dequantisation("auto", None, discrete=False)
    assert not needs_dequantisation("none", 17, discrete=False)


# ----------------------------------------------------------------------------- the noise

def test_each_value_moves_uniformly_inside_its_own_bin():
    levels = 17
    k = torch.arange(levels, dtype=torch.float64).repeat(2000)
    x = (k / (levels - 1)).float().reshape(-1, levels)
    y = dequantise(x, levels, np.random.default_rng(3))
    assert y.dtype == x.dtype and y.shape == x.shape
    torch.testing.assert_close(torch.floor(y.double() * levels).clamp_max(levels - 1),
                               k.reshape(-1, levels))
    u = (y.double() * levels - k.reshape(-1, levels)).flatten().numpy()  # the uniform draws
    assert 0 <= u.min() and u.max() <= 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_one_fixed_draw_per_split_and_seed():
    data = load_data("digits", seed=0, val_fraction=0.1, options={"n": 200})
    a, b = dequantise_dataset(data, 0), dequantise_dataset(data, 0)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))  # reproducible
    assert not torch.equal(a.train, dequantise_dataset(data, 1).train)  # the seed matters
    assert a.dequantised == 17 and a.levels == 17 and a.info()["dequantised"] == 17
    assert data.dequantised is None and data.info()["dequantised"] is None
    with pytest.raises(ValueError):
        dequantise_dataset(a, 0)  # not twice
    with pytest.raises(ValueError):
        dequantise_dataset(load_data("ppca", options={"n": 50}), 0)  # continuous data


# ----------------------------------------------------------------------------- the bound

@pytest.mark.parametrize("levels", [2, 17, 256])
def test_dequantised_density_minus_d_log_l_bounds_the_discrete_log_mass(levels):
    # a Normal density p̃ on one pixel; its discrete model P(k) = ∫ over [k/L, (k+1)/L] of p̃
    p = torch.distributions.Normal(torch.tensor(0.37, dtype=torch.float64),
                                   torch.tensor(0.08, dtype=torch.float64))
    gen = np.random.default_rng(0)
    for k in range(0, levels, max(1, levels // 8)):
        mass = float(p.cdf(torch.tensor((k + 1) / levels, dtype=torch.float64))
                     - p.cdf(torch.tensor(k / levels, dtype=torch.float64)))
        x = torch.full((20000, 1), k / (levels - 1), dtype=torch.float64)
        y = dequantise(x, levels, gen)
        bound = float(p.log_prob(y).mean()) + bits_correction(levels)  # E_u log p̃(x̃) − log L
        se = float(p.log_prob(y).std()) / math.sqrt(len(y))
        assert bound <= math.log(mass) + 4 * se + 1e-12
        # the bin is narrow where the density is smooth: the bound is tight there
        if abs(k / levels - 0.37) < 0.1 and levels == 256:
            assert math.log(mass) - bound < 1e-3


def test_bits_per_dim_kinds_and_the_correction():
    d = 64
    normal = get_likelihood("normal", scale="learned")
    digits = load_data("digits", options={"n": 100})
    deq = dequantise_dataset(digits, 0)
    log_px = -17.5
    bits, kind, scored = bits_per_dim_of(log_px, d, normal, deq, True)
    assert (kind, scored) == ("bound", "levels=17")
    assert bits == pytest.approx(-(log_px - d * math.log(17)) / (d * math.log(2)), rel=1e-12)
    assert bits == pytest.approx(math.log2(17) - log_px / (d * math.log(2)), rel=1e-12)
    dnormal = get_likelihood("dnormal", levels=17)
    assert bits_per_dim_of(-150.0, d, dnormal, digits, True) == (
        pytest.approx(150 / (d * math.log(2))), "exact", "levels=17")
    bern = get_likelihood("bernoulli")
    binary = load_data("digits-binary", options={"n": 100})
    assert bits_per_dim_of(-20.0, d, bern, binary, True)[1:] == ("exact", "binary")
    assert bits_per_dim_of(-20.0, d, bern, digits, False)[1:] == (None, None)  # grey levels
    assert bits_per_dim_of(5.0, 20, normal, load_data("ppca", options={"n": 50}), True)[1:] == (
        "density", None)
    assert bits_per_dim_of(5.0, d, normal, digits, True)[1:] == ("density", None)  # none: as they are
    assert math.isnan(bits_per_dim_of(math.nan, d, normal, deq, False)[0])  # an AE


# ----------------------------------------------------------------------------- wired into fitting

@pytest.mark.parametrize(("likelihood", "data", "mode", "dequantised"), [
    ("normal", "digits", "auto", 17),
    ("cbernoulli", "digits", "auto", 17),
    ("laplace", "digits-binary", "auto", 2),
    ("dnormal", "digits", "auto", None),
    ("bernoulli", "digits", "auto", None),
    ("normal", "digits", "none", None),
])
def test_build_dequantises_densities_on_grey_levels_only(likelihood, data, mode, dequantised):
    config = TrainConfig(data=data, likelihood=likelihood, dequantise=mode, **SMALL)
    ds, _ = build(config)
    assert ds.dequantised == dequantised
    raw = load_data(data, seed=config.seed, val_fraction=config.val_fraction,
                    options=config.data_options)
    if dequantised is None:
        assert torch.equal(ds.train, raw.train)
    else:  # the same rows, each value inside its grid value's bin
        k = torch.round(raw.test.double() * (ds.levels - 1))
        assert torch.equal(torch.floor(ds.test.double() * ds.levels).clamp_max(ds.levels - 1), k)


def test_build_leaves_continuous_data_alone():
    ds, _ = build(TrainConfig(data="ppca", likelihood="normal", **{**SMALL, "data_options": {"n": 200}}))
    assert ds.dequantised is None and ds.levels is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fit_reports_a_bound_and_reloads_the_same_draw(tmp_path):
    config = TrainConfig(data="digits", likelihood="normal", scale="learned", **SMALL)
    result = fit(config, tmp_path / "run", progress=False)
    e = read_eval(tmp_path / "run" / EVAL_FILE)
    d = 64
    assert e["bits_per_dim_kind"] == "bound" and e["scored_data"] == "levels=17"
    assert e["dequantised"] == 17 and e["comparable"] is True
    assert e["bits_per_dim"] == pytest.approx(-(e["log_px"] - d * math.log(17)) / (d * math.log(2)))
    assert e["bits_per_dim"] > 0
    again = load_fitted(tmp_path / "run")  # evaluate and resume rebuild the same dequantised data
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(again.data, split), getattr(result.data, split))
