"""The ArviZ layer: same answers and columns under ArviZ 0.x and 1.x."""

import numpy as np
import pytest

from vaelik.analysis import build_run_data, compare_runs, load_run_data, save_run_data, summarize_scale
from vaelik.analysis.arviz_io import COMPARE_COLUMNS, SUMMARY_COLUMNS, arviz_generation


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


def test_too_few_draws(tmp_path):
    small = {k: build_run_data(np.zeros((5, 4)) - k, np.zeros((4, 2)), None) for k in (1, 2)}
    with pytest.raises(ValueError, match="at least 25"):
        compare_runs({str(k): v for k, v in small.items()})


def test_generation_matches_installed_arviz():
    from vaelik.analysis.arviz_io import arviz_version

    major = int(arviz_version().split(".")[0])
    assert arviz_generation() == (0 if major == 0 else 1)
