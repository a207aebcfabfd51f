"""Property-based tests (hypothesis) of the likelihood API: random shapes, scales and values.

- Densities are finite where they must be: Normal/Laplace for any finite x and
  loc in a wide range and any scale >= min_scale (every scale mode); Bernoulli for
  any finite logits and x in [0, 1]; ContinuousBernoulli for x in [0, 1] and
  logits in a wide range.
- Invalid arguments raise a ``ValueError`` (``InputError``) naming the argument:
  zero / negative / NaN / inf scale, min_scale, init_scale, prior settings, an
  unknown scale mode or family, a scale given to a family without one.

"Wide range": |x|, |loc| <= 1e3 and scales in [min_scale, 1e3] in float32, so
that the squared error over the scale stays far from float32 overflow (3.4e38);
beyond that a density can overflow to -inf in float32 however it is written.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vaelik.errors import InputError
from vaelik.models.likelihoods import SCALE_MODES, get_likelihood, likelihood_names
from vaelik.validate import check_positive

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
LOCATION_SCALE = ("normal", "laplace")
UNIT = ("bernoulli", "cbernoulli")

shapes = st.tuples(st.integers(1, 5), st.integers(1, 6))
min_scales = st.floats(1e-6, 1.0)
wide = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
unit = st.floats(0.0, 1.0, allow_nan=False, width=32)


def tensors(draw, shape, elements) -> torch.Tensor:
    values = draw(st.lists(elements, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def _log_prob(lik, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    scale = lik.model_scale(x.shape[-1], x)
    return lik.observation(out, scale, x).log_prob(x)


# ------------------------------------------------------------------------------------------
# Finite densities


@SETTINGS
@given(data=st.data(), family=st.sampled_from(LOCATION_SCALE), shape=shapes,
       min_scale=min_scales, factor=st.floats(1.0, 1e3))
def test_location_scale_fixed_is_finite(data, family, shape, min_scale, factor):
    x = tensors(data.draw, shape, wide)
    loc = tensors(data.draw, shape, wide)
    lik = get_likelihood(family, scale=min_scale * factor, min_scale=min_scale)
    lp = _log_prob(lik, loc, x)
    assert lp.shape == (shape[0],)
    assert torch.isfinite(lp).all()


@SETTINGS
@given(data=st.data(), family=st.sampled_from(LOCATION_SCALE), shape=shapes,
       min_scale=min_scales, mode=st.sampled_from(("learned", "per_dim", "optimal", "bayesian")))
def test_location_scale_modes_are_finite(data, family, shape, min_scale, mode):
    pyro.clear_param_store()
    x = tensors(data.draw, shape, wide)
    loc = tensors(data.draw, shape, wide)
    lik = get_likelihood(family, scale=mode, min_scale=min_scale, init_scale=2 * min_scale + 0.1)
    lp = _log_prob(lik, loc, x)
    assert lp.shape == (shape[0],)
    assert torch.isfinite(lp).all()


@SETTINGS
@given(data=st.data(), family=st.sampled_from(LOCATION_SCALE), shape=shapes, min_scale=min_scales)
def test_location_scale_predicted_is_finite(data, family, shape, min_scale):
    """Heteroscedastic: scale = min_scale + softplus(raw) >= min_scale for any raw output."""
    x = tensors(data.draw, shape, wide)
    out = tensors(data.draw, (shape[0], 2 * shape[1]), wide)
    lik = get_likelihood(family, scale="predicted", min_scale=min_scale)
    lp = _log_prob(lik, out, x)
    assert lp.shape == (shape[0],)
    assert torch.isfinite(lp).all()


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_bernoulli_is_finite_for_any_finite_logits(data, shape):
    logits = tensors(data.draw, shape, st.floats(allow_nan=False, allow_infinity=False, width=32))
    x = tensors(data.draw, shape, unit)
    lp = _log_prob(get_likelihood("bernoulli"), logits, x)
    assert lp.shape == (shape[0],)
    assert torch.isfinite(lp).all()


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_continuous_bernoulli_is_finite_on_the_unit_interval(data, shape):
    logits = tensors(data.draw, shape, wide)
    x = tensors(data.draw, shape, unit)
    lp = _log_prob(get_likelihood("cbernoulli"), logits, x)
    assert lp.shape == (shape[0],)
    assert torch.isfinite(lp).all()


@SETTINGS
@given(data=st.data(), family=st.sampled_from(UNIT), shape=shapes,
       bad=st.one_of(st.floats(1.0, 1e6, exclude_min=True, width=32),
                     st.floats(-1e6, 0.0, exclude_max=True, width=32), st.just(math.nan)))
def test_unit_interval_families_reject_data_outside_it(data, family, shape, bad):
    x = tensors(data.draw, shape, unit)
    x[data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1))] = bad
    with pytest.raises(ValueError, match=f"likelihood '{family}' needs data in \\[0, 1\\]"):
        get_likelihood(family).check_data(x)


# ------------------------------------------------------------------------------------------
# Invalid arguments: a ValueError that names the argument

bad_numbers = st.one_of(
    st.just(0.0), st.just(-0.0), st.floats(max_value=0.0, allow_nan=False),
    st.just(math.nan), st.just(math.inf), st.just(-math.inf),
    st.sampled_from([torch.tensor(math.nan), torch.tensor(-1.0), True, None, "abc", [1.0]]),
)


@SETTINGS
@given(family=st.sampled_from(LOCATION_SCALE), bad=bad_numbers)
def test_bad_fixed_scale_names_scale(family, bad):
    assume(bad is not None and not isinstance(bad, str))  # None = default; str: next test
    with pytest.raises(ValueError, match=r"\bscale\b"):
        get_likelihood(family, scale=bad)


@SETTINGS
@given(family=st.sampled_from(LOCATION_SCALE),
       argument=st.sampled_from(("min_scale", "init_scale", "prior_median", "prior_log_sd")),
       bad=bad_numbers)
def test_bad_scale_settings_name_the_argument(family, argument, bad):
    assume(bad is not None)
    with pytest.raises(ValueError, match=argument):
        get_likelihood(family, scale="bayesian", **{argument: bad})


@SETTINGS
@given(family=st.sampled_from(LOCATION_SCALE), text=st.text(max_size=20))
def test_any_scale_text_is_a_mode_a_positive_number_or_an_error_naming_scale(family, text):
    try:
        number = float(text)
    except ValueError:
        number = None
    valid = text in SCALE_MODES or (number is not None and math.isfinite(number) and number > 0)
    if valid:
        lik = get_likelihood(family, scale=text, min_scale=1e-6, init_scale=1.0)
        assert lik.scale_mode == (text if text in SCALE_MODES else "fixed")
    else:
        with pytest.raises(ValueError, match="scale"):
            get_likelihood(family, scale=text)


@SETTINGS
@given(min_scale=min_scales, ratio=st.floats(0.01, 1.0), mode=st.sampled_from(("learned",
                                                                             "per_dim")))
def test_init_scale_at_or_below_min_scale_is_refused(min_scale, ratio, mode):
    """A learned scale starts at init_scale, which must lie above its bound min_scale."""
    with pytest.raises(ValueError, match="init_scale .* min_scale"):
        get_likelihood("normal", scale=mode, min_scale=min_scale, init_scale=min_scale * ratio)


@SETTINGS
@given(min_scale=st.floats(1e-6, 1e3),
       scale=st.one_of(st.floats(1e-6, 1e3), st.sampled_from(("predicted", "optimal",
                                                               "bayesian"))))
def test_init_scale_does_not_matter_where_it_is_not_used(min_scale, scale):
    """Fixed / predicted / optimal / Bayesian scales accept any min_scale with the default
    init_scale (1.0): the pair is only checked for learned scales."""
    get_likelihood("laplace", scale=scale, min_scale=min_scale)


@SETTINGS
@given(name=st.text(max_size=20))
def test_unknown_family_names_likelihood(name):
    assume(name not in likelihood_names())
    with pytest.raises(ValueError, match=f"unknown likelihood {re_escape(repr(name))}"):
        get_likelihood(name)


@SETTINGS
@given(family=st.sampled_from(UNIT),
       scale=st.one_of(st.floats(allow_nan=True), st.sampled_from(SCALE_MODES)))
def test_a_scale_for_a_family_without_one_names_scale(family, scale):
    with pytest.raises(ValueError, match="has no scale; drop --scale"):
        get_likelihood(family, scale=scale)


@SETTINGS
@given(value=st.one_of(st.floats(), st.integers(-10, 10), st.booleans()))
def test_check_positive_accepts_exactly_finite_positive_numbers(value):
    ok = not isinstance(value, bool) and math.isfinite(value) and value > 0
    if ok:
        assert check_positive("x", value) == float(value)
    else:
        with pytest.raises(InputError, match="^x must be a positive"):
            check_positive("x", value)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)
