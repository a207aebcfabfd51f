"""Sweeps: grid expansion and names, bad grid files, re-runs after failure, SIGINT and SIGKILL, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from vaelik.cli import main
from vaelik.rundir import read_status
from vaelik.inference.sweep import (
    GRID_KEYS,
    Grid,
    expand,
    grid_from_dict,
    grid_to_toml,
    load_grid,
    run_sweep,
)

BRIEF_GRID = """\
data = "digits"
epochs = 20
[grid]
likelihood = ["normal", "laplace"]
scale = ["learned", 0.1]
seed = [0, 1]
"""

#: settings that make one run take about a second
TINY = 'data = "digits"\nhidden_dim = 16\niwae_samples = 8\nbatch_size = 256\n'


def _write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _mtimes(folder: Path, names) -> dict[str, int]:
    return {n: (folder / n / "eval.json").stat().st_mtime_ns for n in names}


# -- expansion and names ------------------------------------------------------------------


def test_brief_grid_expands_to_eight_named_runs(tmp_path):
    expansion = expand(load_grid(_write(tmp_path, BRIEF_GRID)))
    assert len(expansion) == 8
    assert {r.name for r in expansion.runs} == {
        f"{lik}-{scale}-s{seed}" for lik in ("normal", "laplace")
        for scale in ("learned", "0.1") for seed in (0, 1)
    }
    run = next(r for r in expansion.runs if r.name == "laplace-0.1-s1")
    assert run.config["scale"] == 0.1 and run.config["epochs"] == 20 and run.config["seed"] == 1
    assert run.train_config().check().name == "laplace-0.1-s1"


def test_family_without_scale_ignores_the_scale_axis(tmp_path):
    text = BRIEF_GRID.replace('["normal", "laplace"]', '["normal", "bernoulli", "cbernoulli"]')
    expansion = expand(load_grid(_write(tmp_path, text)))
    names = [r.name for r in expansion.runs]
    assert len(names) == 4 + 2 + 2  # normal 2 scales x 2 seeds; each scale-less family 2 seeds
    assert "bernoulli-s0" in names and "cbernoulli-s1" in names
    assert all(r.config["scale"] is None for r in expansion.runs if "bernoulli" in r.name)
    assert any("no scale" in n and "4 duplicate" in n for n in expansion.notes)


def test_dry_run_prints_grid_size_and_note(tmp_path, capsys):
    text = BRIEF_GRID.replace('["normal", "laplace"]', '["normal", "bernoulli"]')
    assert main(["sweep", str(_write(tmp_path, text)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "normal-learned-s0" in out and "bernoulli-s1" in out
    assert "6 configurations" in out and "scale axis is ignored" in out


def test_names_are_stable_and_independent_of_key_order(tmp_path):
    reordered = ('epochs = 20\ndata = "digits"\n[grid]\nseed = [0, 1]\nscale = ["learned", 0.1]\n'
                 'likelihood = ["normal", "laplace"]\n')
    a = expand(load_grid(_write(tmp_path, BRIEF_GRID, "a.toml")))
    b = expand(load_grid(_write(tmp_path, reordered, "b.toml")))
    assert sorted(r.name for r in a.runs) == sorted(r.name for r in b.runs)
    assert [r.name for r in a.runs] == [r.name for r in expand(load_grid(tmp_path / "a.toml")).runs]


def test_extra_configurations_and_varying_keys_in_names(tmp_path):
    text = BRIEF_GRID + ('[[extra]]\nlikelihood = "normal"\nscale = "learned"\nmodel = "linear"\n'
                         'latent_dim = 4\nseed = 0\n')
    names = [r.name for r in expand(load_grid(_write(tmp_path, text))).runs]
    assert len(names) == 9
    # model and latent_dim vary only through the extra: only its name shows them
    assert "normal-learned-s0" in names and "normal-learned-linear-z4-s0" in names
    grid_only = [r.name for r in expand(load_grid(_write(tmp_path, BRIEF_GRID, "g.toml"))).runs]
    assert set(grid_only) <= set(names)  # adding an extra renames nothing


def test_names_are_path_safe_and_unique():
    grid = Grid(base={"epochs": 1},
                axes={"data": ["../my data/x.npz", "/other/x.npz", "y z.npy"], "seed": [0]})
    runs = expand(grid).runs
    names = [r.name for r in runs]
    assert len(set(names)) == 3
    for name in names:
        assert name and not name.startswith(".") and ".." not in name and "/" not in name
        assert all(c.isalnum() or c in "._-" for c in name) and len(name) <= 80
    # the two x.npz files give the same readable stem: a hash suffix keeps them apart
    assert sum(n.startswith("x-s0-") for n in names) == 2


def test_grid_to_toml_round_trips():
    grid = Grid(base={"data": "digits", "epochs": 3, "data_options": {"sigma": 0.1}},
                axes={"scale": [1.0, "learned"], "seed": [0, 1]},
                extra=[{"likelihood": "bernoulli", "seed": 0}])
    import tomllib

    again = grid_from_dict(tomllib.loads(grid_to_toml(grid)))
    assert [r.name for r in expand(again).runs] == [r.name for r in expand(grid).runs]


# -- bad grid files: exit 2, one line ------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (None, "not found"),
    ("data = \n", "not valid TOML"),
    (BRIEF_GRID + "colour = 3\n", "unknown key 'colour'"),
    ('data = "digits"\n[grid]\nlatent_size = [2, 4]\n', "unknown key 'latent_size'"),
    ('data = "digits"\n', "nothing to run"),
    ('data = "digits"\n[grid]\nseed = []\n', "empty list"),
])
def test_bad_grid_file_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = tmp_path / "grid.toml"
    if text is not None:
        path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    if "unknown key" in expected:
        assert all(k in err for k in GRID_KEYS)
    assert not (tmp_path / "out").exists()


# -- running ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_2_failing_config_recorded_and_rerun_skips_completed(tmp_path, capsys):
    grid = _write(tmp_path, TINY + 'epochs = 2\n[grid]\nlatent_dim = [2, 0]\nscale = ["learned", 0.5]\n')
    out = tmp_path / "sweep"
    assert main(["sweep", str(grid), "--out", str(out), "--jobs", "2", "--quiet"]) == 1
    table = pd.read_csv(out / "sweep.csv").set_index("run")
    assert len(table) == 4
    assert (out / "grid.toml").read_text() == grid.read_text()
    ok = [n for n in table.index if "z2" in n]
    bad = [n for n in table.index if "z0" in n]
    assert (table.loc[ok, "status"] == "completed").all()
    assert (table.loc[bad, "status"] == "failed").all()
    assert table.loc[bad, "reason"].str.contains("latent-dim must be an integer").all()
    assert table.loc[ok, "mse"].notna().all() and table.loc[ok, "seconds"].notna().all()
    assert table.loc["learned-z2-s0", "scale_ratio"] > 0
    for name in ok:
        assert read_status(out / name) == "completed"
        assert json.loads((out / name / "config.json").read_text())["name"] == name

    before = _mtimes(out, ok)
    result = run_sweep(grid, out, jobs=2, progress=False)
    assert set(result.results) == set(bad)  # only the failed ones were tried again
    assert _mtimes(out, ok) == before


def _spawn_sweep(grid: Path, out: Path, jobs: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vaelik.cli", "sweep", str(grid), "--out", str(out),
         "--jobs", str(jobs), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )


def _wait_until(predicate, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"sweep ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _started_second(out: Path, names: list[str]):
    """True once the first run is complete and the second has a checkpoint but is not complete."""
    def check() -> bool:
        return (read_status(out / names[0]) == "completed"
                and (out / names[1] / "checkpoint.pt").exists()
                and read_status(out / names[1]) == "running")
    return check


# long enough per run that a run caught half-way cannot finish in the ~0.5 s an orphaned
# worker takes to notice its killed parent
SLOW_EPOCHS = 120
SLOW_GRID = TINY + f'epochs = {SLOW_EPOCHS}\nlikelihood = "normal"\nscale = "learned"\n[grid]\nseed = [0, 1, 2]\n'


def _sweep_at_second_run(tmp_path):
    """Start SLOW_GRID in a subprocess; return once run 1 is complete and run 2 half-way."""
    grid = _write(tmp_path, SLOW_GRID)
    out = tmp_path / "sweep"
    names = ["s0", "s1", "s2"]
    proc = _spawn_sweep(grid, out)
    try:
        _wait_until(_started_second(out, names), proc=proc)
    except BaseException:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return grid, out, names, proc


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_without_redoing_completed(tmp_path):
    grid, out, names, proc = _sweep_at_second_run(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert read_status(out / "s0") == "completed"
    assert read_status(out / "s1") != "completed"  # half-way: not counted as complete
    before = _mtimes(out, ["s0"])
    # the orphaned worker notices its parent is gone and exits; the re-run waits for its lock
    result = run_sweep(grid, out, jobs=1, progress=False)
    assert set(result.results) == {"s1", "s2"}  # exactly the runs not complete were trained
    assert result.results["s1"]["resumed"] is True  # continued from its checkpoint
    assert all(read_status(out / n) == "completed" for n in names)
    assert _mtimes(out, ["s0"]) == before
    table = pd.read_csv(out / "sweep.csv")
    assert (table["status"] == "completed").all() and len(table) == 3
    metrics = pd.read_csv(out / "s1" / "metrics.csv")
    assert sorted(metrics[metrics.split == "train"]["epoch"]) == list(range(1, SLOW_EPOCHS + 1))


@pytest.mark.slow
def test_sigint_marks_running_run_interrupted(tmp_path):
    _, out, _, proc = _sweep_at_second_run(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert read_status(out / "s0") == "completed"
    assert read_status(out / "s1") == "interrupted"
    assert read_status(out / "s2") is None
    table = pd.read_csv(out / "sweep.csv").set_index("run")
    assert table.loc["s1", "status"] == "interrupted" and table.loc["s2", "status"] == "missing"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ray_local_backend(tmp_path):
    pytest.importorskip("ray")
    grid = _write(tmp_path, TINY + 'epochs = 2\n[grid]\nlikelihood = ["normal", "laplace"]\n'
                                   'latent_dim = [2, 0]\n')
    out = tmp_path / "sweep"
    result = run_sweep(grid, out, backend="ray", address="local", jobs=2, progress=False)
    table = result.table.set_index("run")
    assert len(table) == 4
    assert (table.loc[["normal-z2-s0", "laplace-z2-s0"], "status"] == "completed").all()
    assert (table.loc[["normal-z0-s0", "laplace-z0-s0"], "status"] == "failed").all()
    for name in ("normal-z2-s0", "laplace-z2-s0"):
        files = {p.name for p in (out / name).iterdir()}
        assert {"config.json", "metrics.csv", "eval.json", "checkpoint.pt", "status"} <= files
        assert json.loads((out / name / "eval.json").read_text())["mse"] > 0
