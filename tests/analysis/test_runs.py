"""Reading run directories: discovery, statuses, problems, loaders."""

import json

import numpy as np
import pytest
from analysis_fixtures import EPOCHS, FIXED_SIGMAS, D, make_run

from vaelik.analysis import RunFileError, load_images, load_per_dim, load_pointwise, load_runs


def test_finds_runs_at_every_depth_and_lists_statuses(suite):
    root, planted = suite
    runs = load_runs(root)
    names = set(runs.runs["run"])
    assert set(planted) <= names  # runs 2 and 3 levels deep included
    assert "failed-run" in names and "broken-run" in names
    failed = runs.runs.set_index("run").loc["failed-run"]
    assert failed["status"].startswith("failed:") and not failed["completed"]
    broken = runs.runs.set_index("run").loc["broken-run"]  # listed, never analysed
    assert broken["status"].startswith("unreadable: eval.json") and not broken["completed"]
    assert len(runs.completed) == len(planted)


def test_corrupt_file_is_a_problem_not_a_crash(suite):
    root, _ = suite
    runs = load_runs(root)
    assert any("broken-run" in p and "eval.json" in p for p in runs.problems)


def test_metrics_only_completed_unless_asked(suite):
    root, planted = suite
    runs = load_runs(root)
    assert set(runs.metrics["run"]) == set(planted)
    assert len(runs.metrics) == len(planted) * EPOCHS * 2
    for col in ("likelihood", "scale", "scale_mode", "model", "latent_dim", "seed", "data"):
        assert col in runs.metrics.columns


def test_include_incomplete(tmp_path):
    make_run(tmp_path, "done")
    make_run(tmp_path, "still-running", status="running")
    assert set(load_runs(tmp_path).metrics["run"]) == {"done"}
    assert set(load_runs(tmp_path, include_incomplete=True).metrics["run"]) == {"done", "still-running"}


def test_config_flattening(suite):
    root, _ = suite
    table = load_runs(root).runs.set_index("run")
    row = table.loc["normal-fixed-0.3"]
    assert row["scale"] == "0.3" and row["scale_mode"] == "fixed"
    assert row["scale_value"] == pytest.approx(0.3)
    assert row["elbo_estimator"] == "meanfield" and np.isfinite(row["elbo"])
    assert table.loc["normal-learned-s0", "scale"] == "learned"
    assert table.loc["bernoulli-s0", "scale_mode"] == "none"
    assert table.loc["linear-s0", "ppca_sigma2_ml"] == pytest.approx(0.09)
    assert int(table.loc["cb-s0", "data_dim"]) == D


def test_single_run_dir_and_missing_path(suite, tmp_path):
    root, planted = suite
    one = load_runs(planted["normal-learned-s0"]["path"])
    assert list(one.runs["run"]) == ["normal-learned-s0"]
    missing = load_runs(tmp_path / "nope")
    assert missing.runs.empty and missing.problems


def test_duplicate_names_are_made_unique(tmp_path):
    make_run(tmp_path / "a", "same")
    make_run(tmp_path / "b", "same")
    runs = load_runs(tmp_path)
    assert runs.runs["run"].nunique() == 2
    assert runs.metrics["run"].nunique() == 2


def test_loaders(suite):
    _, planted = suite
    path = planted["normal-per_dim-s0"]["path"]
    assert len(load_pointwise(path)) > 0
    assert list(load_per_dim(path).columns)[:4] == ["dim", "scale", "mse", "mae"]
    images = load_images(path)
    assert tuple(images["image_shape"]) == (4, 4)
    assert images["originals"].shape[1] == D


def test_loader_errors_are_clear(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "r"}))
    with pytest.raises(RunFileError, match="pointwise.csv"):
        load_pointwise(run)
    np.savez(run / "images.npz", originals=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunFileError, match="images.npz"):
        load_images(run)


def test_fixed_series_present(suite):
    root, _ = suite
    fixed = load_runs(root).completed.query("scale_mode == 'fixed'")
    assert sorted(fixed["scale_value"]) == sorted(FIXED_SIGMAS)


@pytest.mark.parametrize("shape", [(1, 4, 4), (4, 4)])
def test_images_of_channel_first_runs_are_read_and_drawn(tmp_path, shape):
    """image_shape (C, H, W), what every run since the image sets writes, and (H, W) of older runs."""
    from vaelik.analysis.figures import plot_prior_samples, plot_reconstructions

    run = tmp_path / "r"
    run.mkdir()
    rng = np.random.default_rng(0)
    arrays = {k: rng.uniform(size=(8, D)) for k in ("originals", "reconstructions", "prior_samples")}
    np.savez(run / "images.npz", image_shape=np.array(shape), **arrays)
    images = load_images(run)
    assert tuple(images["image_shape"]) == shape
    np.testing.assert_array_equal(images["originals"], arrays["originals"])
    fig = plot_reconstructions({"normal (r)": images}, n=8)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 2 * 8  # originals and reconstructions, not the "no image data" figure
    np.testing.assert_array_equal(drawn[0].images[0].get_array(), arrays["originals"][0].reshape(4, 4))
    assert len([ax for ax in plot_prior_samples({"normal (r)": images}, n=8).axes if ax.images]) == 8
    np.savez(run / "images.npz", image_shape=np.array([2, 2, 2, 2]), **arrays)
    with pytest.raises(RunFileError, match=r"image_shape is \[2, 2, 2, 2\], expected \(C, H, W\) or \(H, W\)"):
        load_images(run)
