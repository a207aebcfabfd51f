"""Runs are paired, and grouped in C6 and C7, by data set *and* data options.

Two ``ppca`` runs with ``--data-opt sigma=0.05`` and ``sigma=0.5`` share a data
name and a seed but not a single test point; before the data identity they were
ranked "paired over test points" and mixed into one C6 series and one C7 split.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import N_TEST, make_run

from vaelik.analysis import c6_check, c6_frame, comparison_table, load_runs
from vaelik.analysis._claim import Frames
from vaelik.analysis._common import data_identity, scored_split
from vaelik.analysis.claims import CLAIMS, c7_frame
from vaelik.analysis.report import build_sections
from vaelik.rundir import CONFIG_FILE
from vaelik.rundir.schema import MI_MAX_POINTS


def _with_options(run_dir, **options):
    """Give a planted run ``--data-opt`` options, as ``vaelik train`` records them."""
    path = run_dir / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    config["data_options"] = options
    path.write_text(json.dumps(config), encoding="utf-8")


def _run(root, name, options, **kw):
    make_run(root, name, data="ppca", **kw)
    _with_options(root / name, **options)


def test_data_identity_spells_each_data_set_once():
    a = data_identity({"data": "ppca", "data_options": {"sigma": 0.5, "k": 4}})
    assert a == "ppca (k=4, sigma=0.5)"
    assert data_identity({"data": "ppca", "data_options": {"k": 4.0, "sigma": 0.50}}) == a
    assert data_identity({"data": "ppca", "data_options": {}}) == "ppca"
    assert data_identity({"data": "ppca"}) == "ppca"
    assert data_identity({"data": "ppca", "data_options": {"data_seed": 123456789}}) == \
        "ppca (data_seed=123456789)"  # not rounded to 1.23457e+08
    assert data_identity({"data": "d.npz", "data_key": "x", "data_options": {}}) == "d.npz[x]"


def test_runs_table_has_the_data_identity(tmp_path):
    _run(tmp_path, "a", {"sigma": 0.05})
    make_run(tmp_path, "b", data="ppca")
    runs = load_runs(tmp_path).runs.set_index("run")
    assert runs.loc["a", "data_id"] == "ppca (sigma=0.05)"
    assert runs.loc["b", "data_id"] == "ppca"
    assert runs.loc["a", "data"] == "ppca"  # the data name itself is unchanged


def _arviz(root):
    sections, _ = build_sections(load_runs(root))
    return next(s for s in sections if s.key == "arviz")


def test_runs_on_other_data_options_are_not_paired(tmp_path):
    _run(tmp_path, "s005", {"sigma": 0.05}, seed=0)
    _run(tmp_path, "s05", {"sigma": 0.5}, seed=0)
    arviz = _arviz(tmp_path)
    assert not [c for c, _ in arviz.tables if c.startswith("Ranking")]
    lonely = [n for n in arviz.numbers if "only one comparable run" in n]
    assert len(lonely) == 2
    assert any(n.startswith("ppca (sigma=0.05), seed 0") for n in lonely)
    assert any(n.startswith("ppca (sigma=0.5), seed 0") for n in lonely)


def test_runs_on_the_same_data_options_are_paired(tmp_path):
    _run(tmp_path, "a", {"sigma": 0.05}, seed=0)
    _run(tmp_path, "b", {"sigma": 0.05}, seed=0, likelihood="laplace", sigma=0.08, mae=0.08)
    ranked = [(c, t) for c, t in _arviz(tmp_path).tables if c.startswith("Ranking")]
    assert len(ranked) == 1
    caption, table = ranked[0]
    assert f"ppca (sigma=0.05), seed 0, n_test {N_TEST}" in caption
    assert set(table["run"]) == {"a", "b"}


def test_comparison_table_keeps_data_options_apart(tmp_path):
    _run(tmp_path, "a", {"sigma": 0.05}, mse=0.002)
    _run(tmp_path, "b", {"sigma": 0.5}, mse=0.2, seed=1)
    table = comparison_table(load_runs(tmp_path).runs)
    assert sorted(table["data"]) == ["ppca (sigma=0.05)", "ppca (sigma=0.5)"]
    assert list(table["n_runs"]) == [1, 1]
    assert sorted(table["mse_mean"]) == pytest.approx([0.002, 0.2])


def test_c6_series_are_per_data_options(tmp_path):
    # each data set alone: MSE up, KL down in σ; pooled they would be averaged into one series
    for opts, base in (({"sigma": 0.05}, 1.0), ({"sigma": 0.5}, 10.0)):
        for s in (0.1, 0.3, 1.0):
            _run(tmp_path, f"f{opts['sigma']:g}-{s:g}", opts, scale=s, sigma=s, mse=base * s * 0.01,
                 kl=base * 10 / s)
    check = c6_check(c6_frame(load_runs(tmp_path).runs))
    assert sorted(check["data"]) == ["ppca (sigma=0.05)", "ppca (sigma=0.5)"]
    assert list(check["n_sigmas"]) == [3, 3]
    assert set(check["verdict"]) == {"held"}


def test_c7_splits_are_per_data_options(tmp_path):
    for opts in ({"sigma": 0.05}, {"sigma": 0.5}):
        for i, mse in enumerate((0.01, 0.02)):
            _run(tmp_path, f"c7-{opts['sigma']:g}-{i}", opts, mse=mse, mutual_info=5.0 - i)
    frame = c7_frame(load_runs(tmp_path).runs)
    assert frame["split"].nunique() == 2
    assert set(frame["data"]) == {"ppca (sigma=0.05)", "ppca (sigma=0.5)"}
    assert set(frame.groupby("split")["run"].count()) == {2}


def test_scored_split_names_data_seed_and_test_size():
    frame = pd.DataFrame({"data": ["ppca", "ppca"], "data_id": ["ppca (sigma=0.5)", None],
                          "seed": [3, 3], "n_test": [400.0, np.nan]})
    assert list(scored_split(frame)) == ["ppca (sigma=0.5), seed 3, n_test 400",
                                         "ppca, seed 3, n_test n/a"]


@pytest.mark.parametrize("n_test", [N_TEST, 5000])
def test_c7_cap_is_what_the_estimator_used(tmp_path, n_test):
    """The sampled I_q is capped at log min(n_test, MI_MAX_POINTS), and the text says so."""
    for i, mse in enumerate((0.01, 0.02, 0.03, 0.04)):
        make_run(tmp_path, f"r{i}", mse=mse, mutual_info=4.0 - i)
    runs = load_runs(tmp_path).runs.assign(n_test=n_test)
    frame = c7_frame(runs)
    points = min(n_test, MI_MAX_POINTS)
    assert frame["log_mi_points"].tolist() == pytest.approx([math.log(points)] * 4)
    empty = pd.DataFrame()
    frames = Frames(runs=runs, metrics=empty, identity=empty, points=empty, sigma=empty, per_dim=empty)
    found = CLAIMS["C7"].judge(frames, CLAIMS["C7"].tolerances)
    head = found.numbers[0]
    assert f"capped at log {points:g} = {math.log(points):.4g} nats" in head
    assert f"at most {MI_MAX_POINTS:,}" in head
    if n_test > MI_MAX_POINTS:
        assert f"the first {MI_MAX_POINTS:,} of {n_test:g} test points" in head
    assert "log n_test" not in head
