"""C2/C3/C4: learned scales recovered from planted σ, MSE and per-dim RMSE, labelled by the facts."""

import math

import pytest

from vaelik.analysis import (
    load_runs,
    per_dim_frame,
    per_dim_summary,
    sigma_over_epochs,
    sigma_table,
)


def test_scale_ratio_matches_planted(suite):
    root, planted = suite
    table = sigma_table(load_runs(root).runs).set_index("run")
    for name, ratio in (("normal-learned-s0", 1.02), ("normal-learned-s1", 0.98)):
        p = planted[name]
        row = table.loc[name]
        assert row["ratio"] == pytest.approx(p["sigma"] ** 2 / p["mse"], rel=1e-12)
        assert row["ratio"] == pytest.approx(ratio, rel=1e-12)
        assert row["rmse"] == pytest.approx(math.sqrt(p["mse"]))
        assert row["target"] == pytest.approx(math.sqrt(p["mse"]))
        assert (row["symbol"], row["target_label"], row["ratio_label"]) == ("σ", "√MSE", "σ²/MSE")
    lap = table.loc["laplace-learned-s0"]
    assert lap["ratio"] == pytest.approx(0.97, rel=1e-12)
    assert lap["target"] == pytest.approx(0.08)
    assert (lap["symbol"], lap["target_label"], lap["ratio_label"]) == ("b", "MAE", "b/MAE")
    assert "bernoulli-s0" not in table.index and "cb-s0" not in table.index  # no scale


def test_run_without_facts_is_left_out(tmp_path):
    """A run whose eval.json states no family facts is not guessed from its name."""
    import json

    from analysis_fixtures import make_run

    make_run(tmp_path, "old-normal", sigma=0.1)
    path = tmp_path / "old-normal" / "eval.json"
    evaluation = json.loads(path.read_text())
    del evaluation["family"]
    path.write_text(json.dumps(evaluation))
    runs = load_runs(tmp_path)
    assert sigma_table(runs.runs).empty and sigma_over_epochs(runs.metrics).empty


def test_over_training_frame(suite):
    root, _ = suite
    runs = load_runs(root)
    frame = sigma_over_epochs(runs.metrics)
    row = frame[(frame["run"] == "normal-learned-s0") & (frame["epoch"] == 1)].iloc[0]
    assert row["ratio"] == pytest.approx(row["sigma"] ** 2 / row["rmse"] ** 2)
    assert row["target"] == pytest.approx(row["rmse"]) and row["symbol"] == "σ"
    lap = frame[frame["run"] == "laplace-learned-s0"].iloc[0]
    assert lap["target"] == pytest.approx(lap["mae"]) and lap["ratio"] == pytest.approx(lap["sigma"] / lap["mae"])
    assert lap["target_label"] == "MAE"


def test_per_dim_scale_equals_planted_rmse(suite):
    root, planted = suite
    frame = per_dim_frame(load_runs(root).runs)
    assert set(frame["run"]) == {"normal-per_dim-s0"}
    assert set(frame["target_label"]) == {"√MSE"}
    summary = per_dim_summary(frame).iloc[0]
    assert summary["median_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert summary["correlation"] > 0.99
    assert summary["n_at_bound"] == planted["normal-per_dim-s0"]["n_at_bound"]
    assert summary["n_dims"] == 16
