"""Running sweeps: failures recorded, re-runs, the folder and run locks, SIGINT and SIGKILL, Ray."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock
from sweep_fixtures import TINY
from sweep_fixtures import write_grid as _write
from waiting import HANG_GUARD_S, wait_for

from vaelik.cli import main
from vaelik.errors import InputError
from vaelik.rundir import read_status
from vaelik.sweep import (
    GRID_COPY,
    RunOutcome,
    SweepInterrupted,
    SweepProgress,
    SweepResult,
    run_sweep,
)
from vaelik.sweep.driver import GRID_COPY_MARK


def _mtimes(folder: Path, names) -> dict[str, int]:
    return {n: (folder / n / "eval.json").stat().st_mtime_ns for n in names}


# -- locks, and what the CLI prints -----------------------------------------------------------


def test_second_sweep_on_a_folder_in_use_is_refused(tmp_path, capsys):
    """While another sweep holds the folder's lock, a sweep stops at once, writing nothing."""
    grid = _write(tmp_path, TINY + 'epochs = 1\n[grid]\nseed = [0, 1]\n')
    out = tmp_path / "sweep"
    out.mkdir()
    with FileLock(out / ".sweep.lock", timeout=0):  # the other sweep
        with pytest.raises(InputError, match="in use by another `vaelik sweep`"):
            run_sweep(grid, out)
        assert main(["sweep", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in use by another" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == [".sweep.lock"]


@pytest.fixture
def no_training(monkeypatch):
    """Sweeps that expand, lock and copy their grid but train nothing."""
    from vaelik.sweep import local

    monkeypatch.setattr(local, "run_local", lambda *args, **kwargs: None)


def test_sweep_out_beside_the_users_grid_keeps_it(tmp_path, no_training):
    """`vaelik sweep other.toml --out .` next to the user's own grid.toml leaves that file alone."""
    mine = _write(tmp_path, TINY + "epochs = 7\n[grid]\nseed = [3]\n")
    other = _write(tmp_path, TINY + "epochs = 1\n[grid]\nseed = [0, 1]\n", name="other.toml")
    before = mine.read_bytes()
    run_sweep(other, tmp_path)
    assert mine.read_bytes() == before
    copy = tmp_path / GRID_COPY
    assert copy.read_text() == GRID_COPY_MARK + other.read_text()
    assert run_sweep(copy, tmp_path).out == tmp_path  # the copy is a grid file, and the sweep's to replace
    assert copy.read_text().count(GRID_COPY_MARK) == 1 and mine.read_bytes() == before


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_grid_copy_the_sweep_did_not_write_is_refused(tmp_path, no_training, capsys, kind):
    grid = _write(tmp_path, TINY + "epochs = 1\n[grid]\nseed = [0]\n")
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.toml"
    target.write_text("user's own\n")
    if kind == "file":
        (out / GRID_COPY).write_text("user's own\n")
    else:
        (out / GRID_COPY).symlink_to(target)
    with pytest.raises(InputError, match="move it or choose another --out"):
        run_sweep(grid, out)
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == [GRID_COPY]  # no lock, no sweep.csv
    assert target.read_text() == "user's own\n" and (out / GRID_COPY).read_text() == "user's own\n"


def test_a_run_whose_lock_is_held_is_reported_busy(tmp_path, monkeypatch):
    """A worker waits for the run's lock (an orphan of a killed sweep may hold it); when it
    does not come free in time the run is ``failed: busy`` and its folder is untouched."""
    from vaelik.sweep import worker

    monkeypatch.setattr(worker, "RUN_LOCK_TIMEOUT", 0)
    lock = worker.run_lock_path(tmp_path, "r")
    lock.parent.mkdir()
    config = {"data": "digits", "epochs": 1}
    with FileLock(lock, timeout=0):
        outcome = worker.execute("r", config, str(tmp_path / "r"), str(lock))
    assert outcome.status == "failed" and outcome.reason.startswith("busy:")
    assert not (tmp_path / "r").exists()


def _result(tmp_path):
    table = pd.DataFrame([
        {"run": "a-s0", "status": "completed", "reason": ""},
        {"run": "b-s0", "status": "failed", "reason": "latent-dim must be an integer >= 1"},
        {"run": "c-s0", "status": "interrupted", "reason": ""},
    ])
    results = {"a-s0": RunOutcome("a-s0", "completed", seconds=1.0),
               "b-s0": RunOutcome("b-s0", "failed", "latent-dim must be an integer >= 1", 0.1)}
    return SweepResult(out=tmp_path, table=table, results=results, notes=["x has no scale"],
                       seconds=2.5)


def test_cli_prints_notes_and_summary(tmp_path):
    from vaelik.cli_sweep import print_notes, print_summary

    stream = io.StringIO()
    result = _result(tmp_path)
    print_notes(result, stream)
    print_summary(result, stream)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "note: x has no scale"
    assert lines[1] == "sweep: 1/3 completed (1 this time), 1 failed, 1 interrupted in 2.5 s"
    assert lines[2].split() == ["b-s0", "failed", "latent-dim", "must", "be", "an", "integer",
                                ">=", "1"]
    assert lines[3].split() == ["c-s0", "interrupted"]
    assert result.failed == ["b-s0"]


def test_cli_shows_the_summary_of_an_interrupted_sweep(tmp_path, capsys):
    from vaelik.cli_sweep import show_sweep

    def interrupted(on_progress):
        on_progress(SweepProgress(total=3, done=1))
        raise SweepInterrupted(_result(tmp_path))

    with pytest.raises(KeyboardInterrupt):
        show_sweep(interrupted, quiet=True)
    assert capsys.readouterr().err == ""
    with pytest.raises(SweepInterrupted):
        show_sweep(interrupted)
    assert "sweep: 1/3 completed" in capsys.readouterr().err


# -- running ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_2_failing_config_recorded_and_rerun_skips_completed(tmp_path, capsys):
    # a rate of 1e6 diverges: a valid row whose fit fails (an invalid row is refused up front)
    grid = _write(tmp_path, TINY + 'epochs = 2\n[grid]\nlr = [3e-3, 1e6]\nscale = ["learned", 0.5]\n')
    out = tmp_path / "sweep"
    assert main(["sweep", str(grid), "--out", str(out), "--jobs", "2", "--quiet"]) == 1
    table = pd.read_csv(out / "sweep.csv").set_index("run")
    assert len(table) == 4
    assert (out / GRID_COPY).read_text() == GRID_COPY_MARK + grid.read_text()
    ok = list(table.index[table["status"] == "completed"])
    bad = list(table.index[table["status"] == "failed"])
    assert len(ok) == 2 and len(bad) == 2
    assert table.loc[bad, "reason"].str.contains("ELBO diverged").all()
    assert table.loc[ok, "mse"].notna().all() and table.loc[ok, "seconds"].notna().all()
    assert table.loc[[n for n in ok if n.startswith("learned")][0], "scale_ratio"] > 0
    for name in ok:
        assert read_status(out / name) == "completed"
        assert json.loads((out / name / "config.json").read_text())["name"] == name

    before = _mtimes(out, ok)
    capsys.readouterr()
    reports: list[SweepProgress] = []
    result = run_sweep(grid, out, jobs=2, on_progress=reports.append)
    assert set(result.results) == set(bad)  # only the failed ones were tried again
    assert _mtimes(out, ok) == before
    assert sorted(result.failed) == sorted(bad)
    assert all(result.results[n].status == "failed" for n in bad)
    # progress: one report before the first run (2 complete of 4), then per start and outcome
    assert (reports[0].total, reports[0].done, reports[0].running, reports[0].outcome) == (4, 2, (), None)
    assert sorted(r.outcome.name for r in reports if r.outcome is not None) == sorted(bad)
    assert reports[-1].done == 4 and reports[-1].running == ()
    assert capsys.readouterr() == ("", "")  # the library prints nothing


def _spawn_sweep(grid: Path, out: Path, jobs: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vaelik.cli", "sweep", str(grid), "--out", str(out),
         "--jobs", str(jobs), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )




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
        wait_for(_started_second(out, names), "run 1 complete and run 2 half-way", proc=proc)
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
    result = run_sweep(grid, out, jobs=1)
    assert set(result.results) == {"s1", "s2"}  # exactly the runs not complete were trained
    assert result.results["s1"].resumed is True  # continued from its checkpoint
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
        _, err = proc.communicate(timeout=HANG_GUARD_S)  # waits for the exit; a hang guard only
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
    # a rate of 1e6 diverges: a valid row whose fit fails
    grid = _write(tmp_path, TINY + 'epochs = 2\n[grid]\nlikelihood = ["normal", "laplace"]\n'
                                   'lr = [3e-3, 1e6]\n')
    out = tmp_path / "sweep"
    result = run_sweep(grid, out, backend="ray", address="local", jobs=2)
    table = result.table.set_index("run")
    assert len(table) == 4
    ok = list(table.index[table["status"] == "completed"])
    assert sorted(n.split("-")[0] for n in ok) == ["laplace", "normal"]
    assert (table.loc[[n for n in table.index if n not in ok], "status"] == "failed").all()
    for name in ok:
        files = {p.name for p in (out / name).iterdir()}
        assert {"config.json", "metrics.csv", "eval.json", "checkpoint.pt", "status"} <= files
        assert json.loads((out / name / "eval.json").read_text())["mse"] > 0


def test_runs_start_with_the_most_epochs(tmp_path, monkeypatch):
    """The backend gets the runs sorted by epochs, most first, grid order among equals."""
    from vaelik.sweep import local

    seen = []

    def capture(todo, out, **kwargs):
        seen.extend((r.name, r.config["epochs"]) for r in todo)

    monkeypatch.setattr(local, "run_local", capture)
    grid = _write(tmp_path, TINY + 'epochs = 1\n[grid]\nseed = [0, 1]\n'
                  '[[extra]]\nepochs = 3\nseed = 0\n[[extra]]\nepochs = 2\nseed = 1\n')
    run_sweep(grid, tmp_path / "sweep", jobs=1)
    assert [e for _, e in seen] == [3, 2, 1, 1]
    assert seen[2][0] < seen[3][0]  # seed 0 before seed 1


def test_an_invalid_grid_row_is_refused_before_anything_is_written(tmp_path, capsys):
    """Issue 13: every grid row is checked before a run directory is created."""
    grid = _write(tmp_path, TINY + 'epochs = 2\n[grid]\nlatent_dim = [2, 0]\nseed = [0, 1]\n')
    out = tmp_path / "sweep"
    assert main(["sweep", str(grid), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latent-dim must be an integer" in err
    assert "1 more invalid rows" in err and "nothing was run" in err
    assert not out.exists()
