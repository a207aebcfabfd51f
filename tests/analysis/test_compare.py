"""Comparison table over likelihood x scale, and the C6 σ-sweep check."""

import numpy as np
import pytest
from analysis_fixtures import make_run

from vaelik.analysis import c6_check, c6_frame, comparison_table, format_mean_sd, load_runs
from vaelik.analysis.compare import COMPARE_METRICS


def test_comparison_table_groups_seeds(suite):
    root, planted = suite
    table = comparison_table(load_runs(root).runs)
    assert table["n_runs"].sum() == len(planted)
    learned = table[(table["likelihood"] == "normal") & (table["scale"] == "learned") & (table["model"] == "vae")].iloc[0]
    assert learned["n_runs"] == 2
    sig = [planted[f"normal-learned-s{s}"]["sigma"] for s in (0, 1)]
    assert learned["scale_value_mean"] == pytest.approx(np.mean(sig))
    assert learned["scale_value_sd"] == pytest.approx(np.std(sig, ddof=1))
    assert learned["seconds_train_sd"] == pytest.approx(np.std([10.0, 11.0], ddof=1))
    for m in COMPARE_METRICS:
        assert f"{m}_mean" in table.columns and f"{m}_sd" in table.columns


def test_non_comparable_has_no_density_numbers(suite):
    root, _ = suite
    table = comparison_table(load_runs(root).runs)
    bern = table[table["likelihood"] == "bernoulli"].iloc[0]
    assert np.isnan(bern["log_px_mean"]) and np.isnan(bern["elbo_mean"])
    assert "not comparable" in bern["note"]
    assert np.isfinite(bern["mse_mean"])
    shown = format_mean_sd(table)
    assert shown.loc[table["likelihood"] == "bernoulli", "log_px"].iloc[0] == "n/a"
    pick = (table["likelihood"] == "normal") & (table["scale"] == "learned") & (table["model"] == "vae")
    assert "±" in shown.loc[pick, "mse"].iloc[0]


def test_c6_held_on_planted_series(suite):
    root, _ = suite
    frame = c6_frame(load_runs(root).runs)
    assert set(frame["kind"]) == {"fixed", "learned"}
    check = c6_check(frame)
    assert list(check["verdict"]) == ["held"]
    assert check.iloc[0]["n_sigmas"] == 4


def test_c6_violation_and_too_few(tmp_path):
    for s, mse, kl in ((0.1, 0.01, 5.0), (0.3, 0.02, 9.0), (1.0, 0.05, 1.0)):  # KL not monotone
        make_run(tmp_path / "bad", f"f{s}", scale=s, sigma=s, mse=mse, kl=kl)
    assert c6_check(c6_frame(load_runs(tmp_path / "bad").runs)).iloc[0]["verdict"] == "did not hold"
    for s in (0.1, 0.3):
        make_run(tmp_path / "few", f"g{s}", scale=s, sigma=s)
    verdict = c6_check(c6_frame(load_runs(tmp_path / "few").runs)).iloc[0]["verdict"]
    assert verdict.startswith("not measured in these runs:")


def test_heldout_ranking_planted():
    import numpy as np
    import pandas as pd

    from vaelik.analysis import heldout_ranking

    rng = np.random.default_rng(0)
    n = 50
    base = rng.normal(size=n)
    better = base + 1.0 + rng.normal(scale=0.1, size=n)  # exactly +1 nat per point on average
    frames = {name: pd.DataFrame({"index": np.arange(n), "log_px": v})
              for name, v in (("a", base), ("b", better))}
    table = heldout_ranking(frames)
    assert list(table.index) == ["b", "a"]
    assert table.loc["b", "rank"] == 1
    np.testing.assert_allclose(table.loc["a", "diff"], better.sum() - base.sum())
    np.testing.assert_allclose(table.loc["a", "dse"], np.std(better - base, ddof=1) * np.sqrt(n))
    np.testing.assert_allclose(table.loc["b", "se"], np.std(better, ddof=1) * np.sqrt(n))
    assert table.loc["b", "diff"] == 0
