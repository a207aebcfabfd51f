"""``vaelik demo``: the standard grid, end to end with tiny settings, then the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from vaelik.cli import main
from vaelik.demo import DEMO_EPOCHS, demo_grid, run_demo
from vaelik.sweep import expand
from vaelik.sweep.driver import step_budget

#: the hidden knob that shrinks every run further than --epochs 1 --seeds 1
TINY = {"hidden_dim": 16, "iwae_samples": 8, "batch_size": 256}


def test_demo_grid_is_the_standard_one():
    runs = expand(demo_grid(seeds=2)).runs
    names = {r.name for r in runs}
    assert len(runs) == 10 * 2 + 1
    for scale in ("1", "0.3", "0.1", "learned", "per_dim", "optimal", "bayesian"):
        assert {f"normal-{scale}-s0", f"normal-{scale}-s1"} <= names
    assert {"laplace-learned-s1", "bernoulli-s0", "cbernoulli-s1"} <= names
    linear = [r for r in runs if r.config["model"] == "linear"]
    assert len(linear) == 1 and linear[0].name.startswith("normal-learned-linear-")
    assert linear[0].config["batch_size"] == 64 and linear[0].config["lr"] == 3e-3
    assert all(r.config["data"] == "digits" for r in runs)
    # one schedule for every run, the linear one included
    settings = ("epochs", "patience", "lr_schedule")
    assert len({tuple(r.config[k] for k in settings) for r in runs}) == 1
    assert runs[0].config["epochs"] == DEMO_EPOCHS
    # the sweep starts the run with the most steps first: the linear one (batch 64)
    first = sorted(runs, key=lambda r: -step_budget(r.config))[0]
    assert first is linear[0]


def test_demo_rejects_bad_arguments(capsys):
    assert main(["demo", "--seeds", "0", "--out", "unused"]) == 2
    assert "seeds must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # figures of 1-epoch fits: degenerate ranges
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_demo_end_to_end_tiny(tmp_path, monkeypatch, capsys):
    pytest.importorskip("vaelik.analysis")
    out = tmp_path / "demo"
    monkeypatch.setenv("VAELIK_DEMO_OVERRIDES", json.dumps(TINY))
    assert main(["demo", "--out", str(out), "--epochs", "1", "--seeds", "1", "--jobs", "2",
                 "--quiet"]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 11 and (table["status"] == "completed").all(), table
    (linear,) = out.glob("normal-learned-linear-*")
    config = json.loads((linear / "config.json").read_text())
    assert config["model"] == "linear" and config["hidden_dim"] == 16 and config["epochs"] == 1
    assert (out / "report.html").stat().st_size > 0 and (out / "report.md").exists()
    # every run's files were read: no problem rows (an images.npz of (C, H, W) images once was one)
    md = (out / "report.md").read_text()
    assert "images.npz" not in md and "re-run `vaelik evaluate`" not in md.replace("\\", "")
    # `vaelik report` accepts the sweep folder
    assert main(["report", str(out), "-o", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").stat().st_size > 0
    # a second demo finds everything complete and trains nothing
    result = run_demo(out, epochs=1, seeds=1, jobs=1, overrides=TINY)
    assert result.sweep.results == {}
