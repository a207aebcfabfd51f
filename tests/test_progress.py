"""Progress on a long run: the per-epoch bar (ELBO, scale, time left) and TensorBoard scalars."""

from __future__ import annotations

import math
import sys
import types

import pandas as pd
import pytest
from interrupting import interrupt_after
from tqdm import tqdm

from vaelik.cli import main
from vaelik.inference import TrainConfig, fit
from vaelik.inference.stopping import EarlyStopping
from vaelik.inference.svi import (
    BAR_AT_MOST,
    BAR_EXACT,
    TENSORBOARD_EXTRA,
    progress_bar,
    progress_postfix,
)
from vaelik.rundir import METRICS_FILE

TINY = dict(data="digits", hidden_dim=8, latent_dim=2, iwae_samples=5)


# ----------------------------------------------------------------------------------------
# the progress bar


def test_time_left_counts_only_this_process_epochs_and_says_at_most():
    """A resumed run (initial 5): 2 epochs in 20 s is 0.1 epoch/s, so 3 epochs left are 30 s."""
    line = tqdm.format_meter(n=7, total=10, elapsed=20.0, initial=5, prefix="normal/learned",
                             unit="epoch", bar_format=BAR_AT_MOST, ncols=120)
    assert "7 of at most 10 epochs" in line
    assert "at most 00:30 left" in line
    assert line.startswith("normal/learned:  70%") and "10.00s/epoch" in line
    exact = tqdm.format_meter(n=7, total=10, elapsed=20.0, initial=5, unit="epoch",
                              bar_format=BAR_EXACT, ncols=120)
    assert "7/10 epochs" in exact and "<00:30" in exact and "at most" not in exact


def test_bar_total_is_the_most_epochs_and_it_starts_where_the_run_resumed(capsys):
    bar = progress_bar(6, 40, early_stopping=True, desc="run")
    assert (bar.total, bar.n, bar.initial) == (40, 5, 5)
    assert bar.bar_format == BAR_AT_MOST
    assert list(bar) == list(range(6, 41))
    exact = progress_bar(1, 3, early_stopping=False)
    assert exact.bar_format == BAR_EXACT
    exact.close()
    assert "5 of at most 40 epochs" in capsys.readouterr().err
    assert list(progress_bar(1, 3, early_stopping=True, disable=True)) == [1, 2, 3]


def test_postfix_shows_validation_elbo_scale_and_best_epoch_else_test():
    rows = {"train": {"elbo": 1.0, "scale": 0.5},
            "val": {"elbo": -12.345, "scale": 0.123456},
            "test": {"elbo": -13.0, "scale": 0.123456}}
    stopper = EarlyStopping(5)
    stopper.best_epoch = 4
    assert progress_postfix(rows, stopper) == {"val_elbo": "-12.35", "scale": "0.1235", "best": "4"}
    no_val = {"train": rows["train"], "test": {"elbo": -13.0, "scale": None}}
    assert progress_postfix(no_val, stopper) == {"test_elbo": "-13.00"}


def test_fit_shows_the_bar_with_validation_elbo_scale_and_at_most(capsys):
    result = fit(TrainConfig(**TINY, epochs=3, patience=2), progress=True, evaluate=False)
    err = capsys.readouterr().err
    val = result.metrics[result.metrics.split == "val"].iloc[-1]
    assert f"val_elbo={val.elbo:.2f}" in err
    assert f"scale={val.scale:.4g}" in err
    assert "of at most 3 epochs" in err and "left" in err


def test_without_early_stopping_the_bar_gives_the_exact_total(capsys):
    fit(TrainConfig(**TINY, epochs=2, patience=0), progress=True, evaluate=False)
    err = capsys.readouterr().err
    assert "/2 epochs" in err and "at most" not in err


# ----------------------------------------------------------------------------------------
# TensorBoard


class FakeWriter:
    """Records what vaelik writes through ``torch.utils.tensorboard.SummaryWriter``."""

    made: list[FakeWriter] = []

    def __init__(self, log_dir=None) -> None:
        self.log_dir = log_dir
        self.scalars: dict[tuple[str, int], float] = {}
        self.flushes = 0
        self.closed = False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, global_step=None) -> None:
        assert (tag, global_step) not in self.scalars, "each scalar is written once"
        self.scalars[(tag, global_step)] = value

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeWriter.made = []
    return FakeWriter


def _expected_scalars(metrics: pd.DataFrame) -> dict[tuple[str, int], float]:
    out = {}
    for row in metrics.to_dict("records"):
        for key, value in row.items():
            if key in ("epoch", "split") or value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            out[(f"{row['split']}/{key}", int(row["epoch"]))] = float(value)
    return out


def test_tensorboard_scalars_are_the_metrics_csv_rows(fake_tensorboard, tmp_path):
    run, logs = tmp_path / "run", tmp_path / "tb"
    fit(TrainConfig(**TINY, epochs=3), run, progress=False, evaluate=False, tensorboard=logs)
    (writer,) = fake_tensorboard.made
    assert writer.log_dir == str(logs) and writer.closed and writer.flushes == 3
    csv = pd.read_csv(run / METRICS_FILE)
    expected = _expected_scalars(csv)
    assert set(writer.scalars) == set(expected)
    assert {tag for tag, _ in expected} >= {"train/elbo", "val/elbo", "test/elbo", "val/scale",
                                            "test/mse", "train/seconds"}
    for key, value in expected.items():
        assert writer.scalars[key] == pytest.approx(value, rel=1e-12, abs=0), key


def test_tensorboard_resumed_run_writes_the_epochs_it_trains(fake_tensorboard, tmp_path,
                                                              monkeypatch):
    """Interrupted after epoch 2, resumed with --tensorboard: scalars of epochs 3 and 4 follow."""

    run, logs = tmp_path / "run", tmp_path / "tb"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            fit(TrainConfig(**TINY, epochs=4), run, progress=False, tensorboard=logs)
    assert main(["train", "--resume", str(run), "--tensorboard", str(logs), "--quiet"]) == 0
    first, second = fake_tensorboard.made
    assert first.closed and second.closed and second.log_dir == str(logs)
    expected = _expected_scalars(pd.read_csv(run / METRICS_FILE))
    assert {**first.scalars, **second.scalars} == expected
    assert {step for _, step in first.scalars} == {1, 2}
    assert {step for _, step in second.scalars} == {3, 4}


def test_cli_tensorboard_flag_writes_scalars(fake_tensorboard, tmp_path):
    run, logs = tmp_path / "run", tmp_path / "tb"
    assert main(["train", "--out", str(run), "--epochs", "2", "--hidden-dim", "8",
                 "--iwae-samples", "5", "--quiet", "--tensorboard", str(logs)]) == 0
    (writer,) = fake_tensorboard.made
    assert writer.scalars == _expected_scalars(pd.read_csv(run / METRICS_FILE))
    assert "tensorboard" not in (run / "config.json").read_text()


def test_without_tensorboard_one_line_says_how_to_install_and_nothing_is_written(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run, logs = tmp_path / "run", tmp_path / "tb"
    code = main(["train", "--out", str(run), "--epochs", "1", "--hidden-dim", "8", "--quiet",
                 "--tensorboard", str(logs)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"pip install '{TENSORBOARD_EXTRA}'" in err
    assert err.startswith("vaelik: error: --tensorboard needs the tensorboard package")
    assert not run.exists() and not logs.exists()
