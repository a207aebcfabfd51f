"""The ArviZ layer: same answers and columns under ArviZ 0.x and 1.x."""

import numpy as np
import pytest

from vaelik.analysis import (
    build_run_data,
    compare_runs,
    load_run_data,
    save_run_data,
    summarize_scale,
)
from vaelik.analysis.arviz_io import (
    COMPARE_COLUMNS,
    POINT_ESTIMATE,
    SUMMARY_COLUMNS,
    arviz_generation,
)
from vaelik.rundir import posterior


def _hdi(draws: np.ndarray, prob: float) -> tuple[float, float]:
    """Narrowest interval holding ceil(prob * n) sorted draws (ArviZ's definition)."""
    x = np.sort(draws)
    n = x.size
    k = int(np.floor(prob * n))
    widths = x[k:] - x[: n - k]
    i = int(np.argmin(widths))
    return float(x[i]), float(x[i + k])


@pytest.fixture
def three(tmp_path):
    rng = np.random.default_rng(0)
    n, draws = 30, 200
    out = {}
    for name, shift in (("good", 0.0), ("worse", -0.3), ("worst", -1.0)):
        ll = -5.0 + shift + rng.normal(0, 0.05, size=(draws, n))
        scale = rng.gamma(50, 0.1 / 50, size=draws) if name != "worst" else None
        path = save_run_data(build_run_data(ll, rng.normal(size=(n, 3)), scale), tmp_path / f"{name}.nc")
        out[name] = (ll, scale, load_run_data(path))
    return out


def test_roundtrip_and_summary(three):
    ll, scale, data = three["good"]
    summary = summarize_scale(data)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    row = summary.loc["scale"]
    assert row["mean"] == pytest.approx(scale.mean(), rel=1e-10)
    assert row["sd"] == pytest.approx(scale.std(ddof=1), rel=1e-3)
    lo, hi = _hdi(scale, 0.94)
    assert row["hdi_lower"] == pytest.approx(lo, rel=1e-10)
    assert row["hdi_upper"] == pytest.approx(hi, rel=1e-10)
    assert row["interval"] == "HDI" and row["prob"] == 0.94 and row["draws"] == scale.size


def test_no_scale_gives_empty_summary(three):
    assert summarize_scale(three["worst"][2]).empty


def test_compare_ranks_and_columns(three):
    table = compare_runs({k: v[2] for k, v in three.items()})
    assert tuple(table.columns) == COMPARE_COLUMNS
    assert list(table.index) == ["good", "worse", "worst"]
    assert list(table["rank"]) == [0, 1, 2]
    for name, (ll, _, _) in three.items():
        # importance-sampling LOO: -log mean_s exp(-ll_si), which PSIS smooths
        expected = float(np.sum(-np.log(np.mean(np.exp(-ll), axis=0))))
        assert table.loc[name, "elpd"] == pytest.approx(expected, abs=0.01 * ll.shape[1])
    assert table.loc["good", "elpd_diff"] == pytest.approx(0.0)
    assert table.loc["worse", "elpd_diff"] == pytest.approx(
        table.loc["good", "elpd"] - table.loc["worse", "elpd"], rel=1e-8)
    assert table["weight"].sum() == pytest.approx(1.0)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="observations"):
        build_run_data(np.zeros((30, 5)), np.zeros((4, 2)), None)
    with pytest.raises(ValueError, match="scale_draws"):
        build_run_data(np.zeros((30, 4)), np.zeros((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="at least two"):
        compare_runs({})
    with pytest.raises(ValueError, match="not both"):
        build_run_data(np.zeros((30, 4)), np.zeros((4, 2)), np.ones(30), scale_point=0.1)


def test_too_few_draws(tmp_path):
    small = {k: build_run_data(np.zeros((5, 4)) - k, np.zeros((4, 2)), None) for k in (1, 2)}
    with pytest.raises(ValueError, match="at least 25"):
        compare_runs({str(k): v for k, v in small.items()})


def test_generation_matches_installed_arviz():
    from vaelik.analysis.arviz_io import arviz_version

    major = int(arviz_version().split(".")[0])
    assert arviz_generation() == (0 if major == 0 else 1)


def test_posterior_file_roundtrip_keeps_groups_values_and_attrs(tmp_path):
    """posterior.nc written and read through vaelik.rundir on the installed ArviZ generation."""
    rng = np.random.default_rng(1)
    ll, obs, draws = rng.normal(-3, 0.1, size=(40, 6)), rng.uniform(size=(6, 4)), rng.gamma(9, 0.01, 40)
    bayes = posterior.load_run_data(posterior.save_run_data(
        posterior.build_run_data(ll, obs, draws, scale_mode="bayesian"), tmp_path / "b.nc"))
    assert set(posterior.groups(bayes)) == {"posterior", "log_likelihood", "observed_data"}
    np.testing.assert_array_equal(posterior.scale_draws(bayes), draws)
    assert posterior.scale_point(bayes) is None
    np.testing.assert_array_equal(posterior.group(bayes, "log_likelihood")["x"].values[0], ll)
    np.testing.assert_array_equal(posterior.group(bayes, "observed_data")["x"].values, obs)
    assert posterior.group(bayes, "posterior")["scale"].attrs["scale_mode"] == "bayesian"

    point = posterior.load_run_data(posterior.save_run_data(
        posterior.build_run_data(ll, obs, scale_point=0.25, scale_mode="learned"), tmp_path / "p.nc"))
    assert set(posterior.groups(point)) == {"constant_data", "log_likelihood", "observed_data"}
    assert posterior.scale_draws(point) is None  # a point estimate is not a posterior
    assert posterior.scale_point(point) == 0.25
    attrs = posterior.group(point, "constant_data")["scale"].attrs
    assert attrs["scale_mode"] == "learned" and attrs["kind"] == "point estimate"

    none = posterior.build_run_data(ll, obs)
    assert posterior.scale_draws(none) is None and posterior.scale_point(none) is None


def test_point_estimate_is_summarised_as_such():
    ll, obs = np.zeros((30, 4)), np.zeros((4, 2))
    for data in (build_run_data(ll, obs, scale_point=0.3, scale_mode="fixed"),
                 build_run_data(ll, obs, np.full(30, 0.3))):  # identical "draws" of older files
        row = summarize_scale(data).loc["scale"]
        assert row["interval"] == POINT_ESTIMATE and row["mean"] == pytest.approx(0.3)
        assert row["draws"] == 0 and np.isnan(row["sd"]) and np.isnan(row["hdi_lower"])


def test_analysis_reexports_the_rundir_functions():
    from vaelik import analysis

    assert analysis.build_run_data is posterior.build_run_data
    assert analysis.load_run_data is posterior.load_run_data
    assert analysis.save_run_data is posterior.save_run_data
