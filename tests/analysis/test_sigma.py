"""C2/C3/C4: learned scales recovered from planted σ, MSE and per-dim RMSE."""

import math

import numpy as np
import pytest

from vaelik.analysis import (
    load_runs,
    per_dim_frame,
    per_dim_summary,
    sigma_over_epochs,
    sigma_table,
)


def test_sigma2_over_mse_matches_planted(suite):
    root, planted = suite
    table = sigma_table(load_runs(root).runs).set_index("run")
    for name, ratio in (("normal-learned-s0", 1.02), ("normal-learned-s1", 0.98)):
        p = planted[name]
        assert table.loc[name, "sigma2_over_mse"] == pytest.approx(p["sigma"] ** 2 / p["mse"], rel=1e-12)
        assert table.loc[name, "sigma2_over_mse"] == pytest.approx(ratio, rel=1e-12)
        assert table.loc[name, "rmse"] == pytest.approx(math.sqrt(p["mse"]))
    assert table.loc["laplace-learned-s0", "b_over_mae"] == pytest.approx(0.97, rel=1e-12)
    assert np.isnan(table.loc["laplace-learned-s0", "sigma2_over_mse"])
    assert "bernoulli-s0" not in table.index  # no scale


def test_over_training_frame(suite):
    root, _ = suite
    runs = load_runs(root)
    frame = sigma_over_epochs(runs.metrics)
    row = frame[(frame["run"] == "normal-learned-s0") & (frame["epoch"] == 1)].iloc[0]
    assert row["ratio"] == pytest.approx(row["sigma"] ** 2 / row["rmse"] ** 2)
    lap = frame[frame["run"] == "laplace-learned-s0"].iloc[0]
    assert lap["target"] == pytest.approx(lap["mae"]) and lap["ratio"] == pytest.approx(lap["sigma"] / lap["mae"])


def test_per_dim_scale_equals_planted_rmse(suite):
    root, planted = suite
    frame = per_dim_frame(load_runs(root).runs)
    assert set(frame["run"]) == {"normal-per_dim-s0"}
    summary = per_dim_summary(frame).iloc[0]
    assert summary["median_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert summary["correlation"] > 0.99
    assert summary["n_at_bound"] == planted["normal-per_dim-s0"]["n_at_bound"]
    assert summary["n_dims"] == 16
