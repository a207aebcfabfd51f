r"""Discretised likelihoods (dnormal, dlaplace, dlogistic): masses, stability, facts, bits/dim.

Each claim is computed both ways: the L masses sum to 1; the log masses equal
brute-force CDF differences in float64 (scipy) where those are accurate, and
50-digit mpmath values where they are not (tails, tiny scales); the midpoint
rule (log density × bin width) for scales much wider than a bin; the clamp-and-
round construction of the law by sampling; gradients against finite differences.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pytest
import scipy.stats
import torch
from torch.testing import assert_close

from vaelik.errors import InputError
from vaelik.inference import make_elbo
from vaelik.models import build_model, get_likelihood, likelihood_class
from vaelik.models.likelihoods import likelihood_options
from vaelik.models.likelihoods.binned import (
    BinnedLaplace,
    BinnedLogistic,
    BinnedNormal,
    bin_half_width,
    log_ndtr,
    midpoint_threshold,
)
from vaelik.rundir.family import FamilyFacts, bits_per_dim

mpmath = pytest.importorskip("mpmath")

FAMILIES = ["dnormal", "dlaplace", "dlogistic"]
BINNED = {"dnormal": BinnedNormal, "dlaplace": BinnedLaplace, "dlogistic": BinnedLogistic}
SCIPY = {"dnormal": scipy.stats.norm, "dlaplace": scipy.stats.laplace,
         "dlogistic": scipy.stats.logistic}
LOCS = [-3.0, -0.2, 0.0, 0.013, 0.3, 0.5, 0.77, 1.0, 1.4, 4.0]
SCALES = [1e-4, 1e-3, 1e-2, 0.05, 0.2, 1.0, 10.0]


def grid(levels: int, dtype=torch.float64) -> torch.Tensor:
    return torch.arange(levels, dtype=dtype) / (levels - 1)


def log_mass(family, loc, scale, x, levels, dtype=torch.float64):
    law = BINNED[family](torch.tensor(loc, dtype=dtype), torch.tensor(scale, dtype=dtype), levels)
    return law.log_prob(x)


# ----------------------------------------------------------------------------------------
# The masses


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_masses_over_all_levels_sum_to_one(family, levels, dtype, tol):
    x = grid(levels, dtype)
    for loc in LOCS:
        for scale in SCALES:
            lp = log_mass(family, loc, scale, x, levels, dtype)
            assert torch.isfinite(lp).all() and (lp <= 1e-6).all(), (loc, scale)
            total = lp.double().exp().sum()
            assert_close(total, torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=tol,
                         msg=f"{family} L={levels} loc={loc} scale={scale}: sum {float(total)}")


def _brute_force(family, loc, scale, levels):
    """Masses by plain CDF differences in float64, on the side of loc where they are small."""
    law = SCIPY[family](loc=loc, scale=scale)
    x = np.arange(levels) / (levels - 1)
    h = bin_half_width(levels)
    below = law.cdf(x + h) - law.cdf(x - h)
    above = law.sf(x - h) - law.sf(x + h)
    mass = np.where(x <= loc, below, above)
    mass[0], mass[-1] = law.cdf(h), law.sf(1 - h)
    return mass


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("levels", [2, 17, 256])
def test_log_mass_equals_brute_force_cdf_differences_in_float64(family, levels):
    checked = 0
    for loc in LOCS:
        for scale in SCALES:
            mass = _brute_force(family, loc, scale, levels)
            ok = mass > 1e-9  # a difference of two CDFs is accurate to ~1e-16 absolute
            lp = log_mass(family, loc, scale, grid(levels), levels).numpy()
            np.testing.assert_allclose(lp[ok], np.log(mass[ok]), rtol=1e-6, atol=1e-6,
                                       err_msg=f"{family} L={levels} loc={loc} scale={scale}")
            checked += int(ok.sum())
    assert checked > 20


def _mp_log_mass(family, x, loc, scale, levels):
    """log P(x) with 50 significant digits, through survival functions above loc."""
    mp = mpmath.mp
    mp.dps = 50
    h = mp.mpf(1) / (2 * (levels - 1))
    loc, scale = mp.mpf(loc), mp.mpf(scale)

    def cdf(y, flip=False):  # F((y - loc)/scale), or 1 - F of it with flip
        u = (y - loc) / scale
        u = -u if flip else u
        if family == "dnormal":
            return mp.ncdf(u)
        if family == "dlaplace":
            return mp.exp(u) / 2 if u <= 0 else 1 - mp.exp(-u) / 2
        return 1 / (1 + mp.exp(-u))

    k = round(x * (levels - 1))
    xk = mp.mpf(k) / (levels - 1)
    if k == 0:
        return float(mp.log(cdf(xk + h)))
    if k == levels - 1:
        return float(mp.log(cdf(xk - h, flip=True)))
    if xk > loc:
        return float(mp.log(cdf(xk - h, flip=True) - cdf(xk + h, flip=True)))
    return float(mp.log(cdf(xk + h) - cdf(xk - h)))


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_scales_and_far_tails_are_finite_and_exact(family):
    """Where CDF differences underflow to 0 in float64, the log masses still equal mpmath's."""
    levels = 17
    x = grid(levels)
    underflows = 0
    for loc, scale in [(0.3, 1e-4), (-3.0, 1e-3), (4.0, 1e-4), (0.77, 1e-6), (0.5, 1e-2)]:
        lp = log_mass(family, loc, scale, x, levels)
        assert torch.isfinite(lp).all()
        underflows += int((_brute_force(family, loc, scale, levels) == 0).sum())  # log 0 = -inf
        ref = torch.tensor([_mp_log_mass(family, float(v), loc, scale, levels) for v in x],
                           dtype=torch.float64)
        assert_close(lp, ref, rtol=1e-9, atol=1e-9)
        # float32: finite, and right to float32 precision
        lp32 = log_mass(family, loc, scale, x.float(), levels, torch.float32)
        assert torch.isfinite(lp32).all()
        assert_close(lp32.double(), ref, rtol=1e-4, atol=1e-3)
    assert underflows > 10


@pytest.mark.parametrize("family", FAMILIES)
def test_scale_much_wider_than_a_bin_is_log_density_times_width(family):
    """The midpoint rule's limit: log P(x) → log f(x) + log 2h, edges → log F(h) and log(1 − F(1 − h))."""
    levels, loc = 256, 0.37
    h = bin_half_width(levels)
    x = grid(levels)
    for scale in (1e2, 1e4, 1e6):
        law = SCIPY[family](loc=loc, scale=scale)
        lp = log_mass(family, loc, scale, x, levels)
        inner = x[1:-1].numpy()
        # error O(w²), w = h/s; O(w) in the bin around the Laplace law's kink (there exact)
        atol = np.where(np.abs(inner - loc) < h, h / scale, 1e-9)
        assert np.all(np.abs(lp[1:-1].numpy() - law.logpdf(inner) - math.log(2 * h)) <= atol)
        np.testing.assert_allclose(lp[[0, -1]].numpy(), [law.logcdf(h), law.logsf(1 - h)],
                                   rtol=1e-12)
        # and in the limit both edges hold half the mass each
        assert_close(lp[[0, -1]], torch.full((2,), -math.log(2), dtype=torch.float64),
                     rtol=0, atol=2 / scale)
    # the switch to the midpoint rule is where δ = U − L drops below (24 ε)^(1/3)
    assert midpoint_threshold(torch.float64) == pytest.approx((24 * 2.0**-52) ** (1 / 3))


@pytest.mark.parametrize("family", FAMILIES)
def test_scale_to_zero_puts_all_mass_on_the_nearest_level(family):
    levels = 17
    x = grid(levels)
    for loc, k in [(0.3, 5), (-2.0, 0), (3.0, 16), (0.5, 8)]:
        lp = log_mass(family, loc, 1e-5, x, levels)
        assert lp[k] == pytest.approx(0.0, abs=1e-12)
        assert (torch.cat([lp[:k], lp[k + 1:]]) < -100).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_by_clamp_and_round_has_these_masses(family):
    """Draw y from the continuous law, clamp to [0, 1], round to a level: frequencies = masses."""
    levels, n = 5, 200_000
    torch.manual_seed(0)
    law = BINNED[family](torch.full((n,), 0.3, dtype=torch.float64), torch.tensor(0.25), levels)
    counts = torch.bincount((law.sample() * (levels - 1)).round().long(), minlength=levels)
    p = law.log_prob(grid(levels)[:, None].expand(levels, 1))[:, 0].exp()
    se = (p * (1 - p) / n).sqrt()
    assert (((counts / n) - p).abs() < 5 * se).all(), (counts / n, p)


def test_log_ndtr_equals_torch_and_has_the_tail_gradient():
    u = torch.tensor([-1e4, -1e3, -40.0, -5.0, -0.5, 0.0, 0.5, 5.0, 40.0], dtype=torch.float64)
    assert_close(log_ndtr(u), torch.special.log_ndtr(u), rtol=1e-13, atol=1e-300)
    u32 = torch.tensor([-1e6, -1e4, -1e3], requires_grad=True)
    (grad,) = torch.autograd.grad(log_ndtr(u32).sum(), u32)
    # d/du log Φ(u) = φ(u)/Φ(u) ≈ −u − 1/u for u ≪ 0
    assert_close(grad, -u32.detach() - 1 / u32.detach(), rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_at_the_edges_and_for_tiny_scales(family, dtype):
    for levels in (2, 17, 256):
        x = grid(levels, dtype)
        for loc in (-1e3, -3.0, 0.0, 0.5, 1.0, 1.4, 1e3):
            for scale in (1e-6, 1e-4, 1e-2, 1.0, 1e4):
                lt = torch.tensor(loc, dtype=dtype, requires_grad=True)
                st = torch.tensor(scale, dtype=dtype, requires_grad=True)
                lp = BINNED[family](lt, st, levels).log_prob(x)
                grads = torch.autograd.grad(lp.sum(), (lt, st))
                assert torch.isfinite(lp).all(), (levels, loc, scale)
                assert all(torch.isfinite(g) for g in grads), (levels, loc, scale, grads)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_equal_finite_differences(family):
    levels = 17
    x = grid(levels)
    for loc, scale in [(0.31, 0.05), (-0.2, 0.003), (1.2, 0.3), (0.5, 5.0), (0.13, 1e-3)]:
        def f(lt, log_s):
            return BINNED[family](lt, log_s.exp(), levels).log_prob(x)

        args = (torch.tensor(loc, dtype=torch.float64, requires_grad=True),
                torch.tensor(math.log(scale), dtype=torch.float64, requires_grad=True))
        assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------------
# The likelihood families: options, scale modes, facts


def test_families_are_registered_with_levels_as_their_option():
    for name in FAMILIES:
        cls = likelihood_class(name)
        assert "levels" in likelihood_options(cls) and cls.options == ("levels",)
        assert get_likelihood(name).levels == 256  # 8-bit data by default
        lik = get_likelihood(name, scale=0.1, levels=17)
        assert lik.levels == 17 and lik.describe()["levels"] == 17
        assert cls.data_options(17) == {"levels": 17} and cls.data_options(None) == {}
    assert likelihood_class("normal").data_options(256) == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_options_and_data_are_one_line_input_errors(family):
    for kwargs, text in [({"levels": 1}, "levels must be an integer >= 2"),
                         ({"levels": 17.5}, "levels must be an integer >= 2"),
                         ({"scale": "optimal"}, "has no optimal scale")]:
        with pytest.raises(InputError, match=text):
            get_likelihood(family, **kwargs)
    lik = get_likelihood(family, levels=17)
    lik.check_data(grid(17, torch.float32))
    with pytest.raises(InputError, match=r"needs data on 256 levels k/255, but 0\.5 is not one"):
        get_likelihood(family).check_data(grid(17, torch.float32))  # 8/16 is not k/255
    with pytest.raises(InputError, match=r"needs data in \[0, 1\]"):
        lik.check_data(torch.tensor([[0.0, 1.0625]]))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scale", [0.1, "learned", "per_dim", "predicted", "bayesian"])
def test_every_scale_mode_gives_the_binned_law(family, scale):
    """observation() sums the per-element log masses of the binned law over the d dimensions."""
    levels, n, d = 17, 6, 5
    lik = get_likelihood(family, scale=scale, levels=levels, init_scale=0.3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, levels, (n, d), generator=gen).double() / (levels - 1)
    out = torch.randn(n, d * lik.output_multiplier(), generator=gen, dtype=torch.float64)
    s = lik.model_scale(d, x)
    obs = lik.observation(out, s, x)
    assert obs.batch_shape == (n,) and obs.event_shape == (d,)
    if scale == "predicted":
        loc, s = out[:, :d], lik.min_scale + torch.nn.functional.softplus(out[:, d:])
    else:
        loc = out
    expected = BINNED[family](loc, s, levels).log_prob(x).sum(-1)
    assert_close(obs.log_prob(x), expected)
    assert (obs.log_prob(x) <= 0).all()
    assert_close(obs.mean, loc.clamp(0, 1))


def test_facts_say_the_log_p_is_a_mass_and_read_back():
    facts = get_likelihood("dlaplace", levels=17).facts(d=64, scale=0.1, loss=0.05)
    assert facts.discrete is True and facts.levels == 17
    assert facts.scale_symbol == "b" and facts.loss == "mae" and facts.scale_power is None
    assert facts.affine is False and facts.line_slope is None and facts.scale_ratio is None
    back = FamilyFacts.from_dict(json.loads(json.dumps(facts.to_dict())))
    assert back == facts
    assert get_likelihood("dlogistic").facts().scale_symbol == "s"
    # densities say so; the Bernoulli is a mass over {0, 1}
    assert get_likelihood("normal").facts().discrete is False
    assert get_likelihood("normal").facts().levels is None
    bern = get_likelihood("bernoulli").facts()
    assert bern.discrete is True and bern.levels == 2
    # eval.json written before the fact existed: read as a density
    old = {k: v for k, v in get_likelihood("normal").facts().to_dict().items()
           if k not in ("discrete", "levels")}
    read = FamilyFacts.from_dict(old)
    assert read.discrete is False and read.levels is None
    assert FamilyFacts.from_dict({"name": "x", "discrete": 1, "levels": "many"}).levels is None
    assert FamilyFacts.from_dict({"name": "x", "levels": 256.0}).levels == 256


def test_bits_per_dim_of_a_uniform_guess_is_log2_of_the_levels():
    for levels in (2, 17, 256):
        for d in (1, 64, 784, 3072):
            log_p = d * math.log(1.0 / levels)  # a uniform guess over the levels, per image
            assert bits_per_dim(log_p, d) == pytest.approx(math.log2(levels), rel=1e-15, abs=0)
    assert bits_per_dim(-784 * math.log(256), 784) == 8.0
    assert bits_per_dim(np.array([0.0, -math.log(2)]), 1).tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------------------
# Fitting


@pytest.mark.parametrize("family", FAMILIES)
def test_an_elbo_gradient_through_the_model_is_finite(family):
    torch.manual_seed(0)
    lik = get_likelihood(family, scale="learned", levels=17, init_scale=0.3)
    model = build_model("vae", lik, 8, 2, 8)
    x = torch.randint(0, 17, (32, 8)).float() / 16
    with model.params():
        loss = make_elbo("trace").differentiable_loss(model.model, model.guide, x,
                                                      torch.arange(32), num_data=32)
        loss.backward()
        params = dict(pyro.get_param_store().named_parameters())
    assert math.isfinite(loss.item()) and loss.item() > 0  # −ELBO ≥ −log P(x) ≥ 0 for a mass
    assert "scale" in params
    grads = [p.grad for p in params.values()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_vaelik_train_on_digits_gives_positive_bits_below_a_uniform_guess(tmp_path):
    """A short fit through ``vaelik train`` (the digits are k/16: 17 levels)."""
    from vaelik.cli import main

    out = tmp_path / "dlogistic"
    code = main(["train", "--data", "digits", "--likelihood", "dlogistic", "--lik-opt", "levels=17",
                 "--scale", "learned", "--epochs", "2", "--hidden-dim", "32", "--latent-dim", "4",
                 "--iwae-samples", "4", "--quiet", "--out", str(out)])
    assert code == 0
    evaluation = json.loads((out / "eval.json").read_text())
    assert json.loads((out / "config.json").read_text())["likelihood_options"] == {"levels": 17}
    assert evaluation["family"]["discrete"] is True and evaluation["family"]["levels"] == 17
    assert evaluation["comparable"] is True
    bits = evaluation["bits_per_dim"]
    assert 0 < bits < math.log2(17)
    assert bits == pytest.approx(bits_per_dim(evaluation["log_px"], 64), rel=1e-12)


def test_the_data_sets_levels_reach_the_family(tmp_path):
    """digits record 17 levels; a discretised family takes them unless --lik-opt says otherwise."""
    from vaelik.config import TrainConfig
    from vaelik.inference.run import build

    data, model = build(TrainConfig(data="digits", likelihood="dlogistic", scale="learned",
                                    hidden_dim=8, latent_dim=2, epochs=1))
    assert data.levels == 17 and model.likelihood.levels == 17
    _, model = build(TrainConfig(data="digits-binary", likelihood="dnormal", scale="learned",
                                 hidden_dim=8, latent_dim=2, epochs=1))
    assert model.likelihood.levels == 2
    _, model = build(TrainConfig(data="digits", likelihood="dnormal", scale="learned",
                                 likelihood_options={"levels": 33}, hidden_dim=8, latent_dim=2,
                                 epochs=1))
    assert model.likelihood.levels == 33  # 33 levels: k/32 holds every k/16
