"""Stopping on convergence (issue 11): the validation split, early stopping, the best epoch, lr schedules.

A flat validation ELBO (a learning rate of 1e-6) stops a run after ``patience``
epochs with ``stopped_early: true``; the fitted model, ``eval.json`` and
``vaelik evaluate`` use the best epoch's parameters, the checkpoint keeps the
last ones for a resume; ``plateau`` and ``cosine`` set the optimiser's rates
as documented in :mod:`vaelik.inference.schedules`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyro
import pytest
import torch

from vaelik.errors import InputError
from vaelik.inference import TrainConfig, evaluate_run, fit, load_data, load_fitted, schedules
from vaelik.inference.schedules import (
    LR_SCHEDULES,
    PLATEAU_FACTOR,
    PLATEAU_PATIENCE,
    make_schedule,
)
from vaelik.inference.stopping import SMOOTHING, EarlyStopping, SmoothedBest, improves
from vaelik.rundir import EVAL_FILE, SPLITS

#: a tiny model whose validation ELBO stays flat: it hardly moves at lr 1e-8
# flat: the validation ELBO gains ~1e-6 nats per epoch (the improvement rule asks for ~1e-2)
FLAT = dict(data="digits", hidden_dim=8, latent_dim=2, batch_size=256, lr=1e-8,
            iwae_samples=5, scale="learned", seed=1)
# overfits: 105 training rows, a wide network and a large rate; the validation ELBO peaks
# within about 25 epochs and then falls
OVERFIT = dict(data="ppca", data_options={"n": 150}, hidden_dim=64, latent_dim=8, batch_size=16,
               lr=1e-2, iwae_samples=5, scale="learned", seed=1)


# ------------------------------------------------------------------------------------------
# The validation split


def _row_set(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


def test_val_split_is_disjoint_deterministic_and_leaves_the_test_split_alone(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(300, dtype=np.float32).reshape(100, 3))  # unique rows
    path = str(tmp_path / "x.npy")
    ds = load_data(path, seed=5, test_fraction=0.2, val_fraction=0.1)
    assert (ds.train.shape[0], ds.val.shape[0], ds.test.shape[0]) == (70, 10, 20)
    train, val, test = _row_set(ds.train), _row_set(ds.val), _row_set(ds.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 100
    again = load_data(path, seed=5, test_fraction=0.2, val_fraction=0.1)
    assert torch.equal(again.val, ds.val) and torch.equal(again.train, ds.train)
    without = load_data(path, seed=5, test_fraction=0.2)  # val_fraction 0: the old two splits
    assert torch.equal(without.test, ds.test)  # the test split is untouched
    assert without.val.shape == (0, 3) and _row_set(without.train) == train | val
    other = load_data(path, seed=6, test_fraction=0.2, val_fraction=0.1)
    assert _row_set(other.val) != val
    assert ds.info()["n_val"] == 10 and without.info()["n_val"] == 0


def test_val_fraction_is_checked():
    for bad in (-0.1, 1.0, "a", True):
        with pytest.raises(InputError, match="val-fraction"):
            TrainConfig(val_fraction=bad).check()
    TrainConfig(val_fraction=0).check()
    with pytest.raises(InputError, match="leave no training row"):
        load_data("digits", test_fraction=0.6, val_fraction=0.5)


def test_plateau_without_a_validation_split_keeps_the_rate():
    opt = _optimizer()
    schedule = make_schedule("plateau", opt, epochs=30, patience=4)
    for epoch in range(1, 30):
        schedule.step(epoch, None)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    result = fit(TrainConfig(**FLAT, epochs=2, val_fraction=0, lr_schedule="plateau"), progress=False)
    assert result.training["stopped_early"] is False


def test_plateau_waits_half_the_patience():
    for patience, flat in ((20, 10), (7, 3), (1, 1), (0, PLATEAU_PATIENCE)):
        opt = _optimizer()
        schedule = make_schedule("plateau", opt, epochs=100, patience=patience)
        schedule.step(1, 1.0)
        lrs = []
        for epoch in range(2, 2 + flat):
            schedule.step(epoch, 0.0)  # the moving average falls: no improvement
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs[:-1] == [0.1] * (flat - 1) and lrs[-1] == 0.1 * PLATEAU_FACTOR, patience


def test_an_old_config_means_no_validation_split_and_no_early_stopping():
    old = {k: v for k, v in TrainConfig().to_dict().items()
           if k not in ("val_fraction", "patience", "lr_schedule")}
    config = TrainConfig.from_stored(old)
    assert (config.val_fraction, config.patience, config.lr_schedule) == (0.0, 0, "none")
    assert TrainConfig.from_dict(old).val_fraction == 0.1  # a partial dict (a grid) takes defaults


# ------------------------------------------------------------------------------------------
# The improvement rule and the counters


def test_improvement_rule():
    assert improves(1.0, -math.inf)
    assert not improves(-100.0 + 0.009, -100.0) and improves(-100.0 + 0.011, -100.0)
    assert not improves(0.5 + 0.9e-4, 0.5) and improves(0.5 + 1.1e-4, 0.5)  # at least 1e-4 nats


def test_early_stopping_counts_epochs_without_improvement():
    p = [torch.zeros(2)]
    stopper = EarlyStopping(patience=2)
    stops, averages = [], []
    elbos = [1.0, 2.0, 2.0, 3.0, 2.9, 3.0, 1.0, 1.0]
    for epoch, elbo in enumerate(elbos, start=1):
        p[0].fill_(epoch)
        stops.append(stopper.update(epoch, elbo, ["w"], p))
        averages.append(stopper.track.value)
    # the moving average s_t = s_{t-1} + 0.3 (v_t - s_{t-1}) computed by hand
    expected = [1.0]
    for v in elbos[1:]:
        expected.append(expected[-1] + SMOOTHING * (v - expected[-1]))
    assert averages == pytest.approx(expected, rel=1e-12)
    assert expected[5] > expected[4] > expected[3] and expected[6] < expected[5] > expected[7]
    # epochs 7 and 8 do not raise the average: the second of them stops the run
    assert stops == [False] * 7 + [True]
    # the kept parameters are those of the highest raw ELBO (epoch 4; epoch 6 only ties it)
    assert stopper.best_epoch == 4 and stopper.best_params["w"].tolist() == [4.0, 4.0]
    assert stopper.summary(8) == {"best_epoch": 4, "epochs_run": 8, "stopped_early": True}
    again = EarlyStopping(patience=2)
    again.load_state_dict(stopper.state_dict())
    assert again.state_dict()["params"]["w"].tolist() == [4.0, 4.0] and again.stopped
    never = EarlyStopping(patience=0)
    assert not any(never.update(e, 1.0, ["w"], p) for e in range(1, 50))
    no_val = EarlyStopping(patience=2)
    assert not any(no_val.update(e, None, ["w"], p) for e in range(1, 5))
    assert no_val.summary(4)["best_epoch"] == 4 and no_val.best_params is None


# ------------------------------------------------------------------------------------------
# A run past its best stops early; the best epoch is what is evaluated


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("flat") / "run"
    result = fit(TrainConfig(**OVERFIT, epochs=60, patience=3, name="flat"), run, progress=False)
    return run, result


def test_a_run_past_its_best_stops_early(flat_run):
    run, result = flat_run
    e = json.loads((run / EVAL_FILE).read_text())
    assert e["stopped_early"] is True
    assert e["best_epoch"] < e["epochs_run"] < 60
    assert result.training == {k: e[k] for k in ("best_epoch", "epochs_run", "stopped_early")}
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].max() == e["epochs_run"]
    assert list(metrics["split"][:3]) == ["train", "val", "test"]
    assert set(metrics["split"]) == set(SPLITS)
    val = metrics[metrics.split == "val"].set_index("epoch")["elbo"]
    assert val.idxmax() == e["best_epoch"]
    # replay the rule on the run's own validation ELBOs: the moving average, its best, and the
    # first epoch at which it has not improved for `patience` (3) epochs is where the run ended
    average, best, flat, stop = -math.inf, -math.inf, 0, None
    for epoch, elbo in val.items():
        average = elbo if epoch == 1 else average + SMOOTHING * (elbo - average)
        if improves(average, best):
            best, flat = average, 0
        else:
            flat += 1
        if flat == 3 and stop is None:
            stop = epoch
    assert stop == e["epochs_run"]


def test_the_evaluation_uses_the_best_epoch(flat_run):
    run, _ = flat_run
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    best, last = state["best"]["params"], state["params"]
    assert state["epoch"] > state["best"]["epoch"]
    assert any(not torch.equal(best[n], last[n]) for n in best)  # the run moved after its best
    fitted = load_fitted(run)
    assert fitted.training["best_epoch"] == state["best"]["epoch"]
    with fitted.model.params():
        store = pyro.get_param_store()
        assert sorted(store.keys()) == sorted(best)
        for name in best:
            assert torch.equal(store.get_param(name).unconstrained().detach(), best[name]), name
    before = json.loads((run / EVAL_FILE).read_text())
    after = evaluate_run(run)  # vaelik evaluate: re-evaluates the best parameters
    for key in ("mse_at_mean_z", "scale", "active_units", "best_epoch", "epochs_run",
                "stopped_early"):
        assert after[key] == pytest.approx(before[key], rel=1e-6), key


# ------------------------------------------------------------------------------------------
# Learning-rate schedules


def _optimizer(lrs=(0.1, 0.01)):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.Adam(groups)


def test_schedule_choices_are_the_registry():
    from vaelik.config import FIELDS

    assert FIELDS["lr_schedule"].choices.names() == list(LR_SCHEDULES) == ["none", "plateau", "cosine"]
    with pytest.raises(InputError, match="lr-schedule"):
        TrainConfig(lr_schedule="step").check()


def test_plateau_halves_every_rate_after_a_flat_stretch():
    opt = _optimizer()
    schedule = make_schedule("plateau", opt, epochs=20)  # patience 0: PLATEAU_PATIENCE
    lrs = []
    # the moving average falls through the zeros (no improvement), then jumps with the 50s
    elbos = [1.0, 2.0] + [0.0] * (2 * PLATEAU_PATIENCE) + [50.0, 50.0]
    for epoch, elbo in enumerate(elbos, start=1):
        schedule.step(epoch, elbo)
        lrs.append([g["lr"] for g in opt.param_groups])
    flat_end = 2 + PLATEAU_PATIENCE
    assert lrs[flat_end - 2] == [0.1, 0.01]
    assert lrs[flat_end - 1] == [0.1 * PLATEAU_FACTOR, 0.01 * PLATEAU_FACTOR]
    assert lrs[flat_end + PLATEAU_PATIENCE - 1] == [0.1 * PLATEAU_FACTOR**2, 0.01 * PLATEAU_FACTOR**2]
    assert lrs[-1] == lrs[-2] == lrs[flat_end + PLATEAU_PATIENCE - 1]  # improved: no reduction


def test_cosine_anneals_over_the_epochs():
    opt = _optimizer()
    schedule = make_schedule("cosine", opt, epochs=8)
    for epoch in range(1, 9):  # the rate set after epoch e is the rate of epoch e + 1
        schedule.step(epoch, None)
        factor = 0.5 * (1 + math.cos(math.pi * epoch / 8))
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * factor, 0.01 * factor])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("schedule", ["none", "plateau", "cosine"])
def test_the_optimiser_trains_each_epoch_at_the_scheduled_rate(schedule, monkeypatch, tmp_path):
    """The rate of the optimiser that trains, read at the end of each epoch of a real fit."""
    import vaelik.inference.run as run_module

    seen: list[float] = []
    real = run_module.make_checkpoint

    def spy(config, names, params, optimizer, *args, **kwargs):
        seen.append(optimizer.param_groups[0]["lr"])
        return real(config, names, params, optimizer, *args, **kwargs)

    monkeypatch.setattr(run_module, "make_checkpoint", spy)
    monkeypatch.setattr(schedules, "PLATEAU_PATIENCE", 2)  # no early stopping: this many flat epochs
    # the checkpoint is written after the schedule's step: the rate seen is the next epoch's
    config = TrainConfig(**FLAT, epochs=8, patience=0, lr_schedule=schedule)  # flat: plateaus
    fit(config, tmp_path / "run", progress=False, evaluate=False)
    val = pd.read_csv(tmp_path / "run" / "metrics.csv").query("split == 'val'")["elbo"].tolist()
    lr0 = FLAT["lr"]
    assert len(seen) == 8
    if schedule == "none":
        assert seen == [lr0] * 8
    elif schedule == "cosine":
        assert seen == pytest.approx([lr0 * 0.5 * (1 + math.cos(math.pi * e / 8)) for e in range(1, 9)])
    else:  # replay the plateau rule on the run's own validation ELBOs
        track, lr, expected = SmoothedBest(), lr0, []
        for elbo in val:
            if not track.update(elbo) and track.flat >= 2:
                lr, track.flat = lr * PLATEAU_FACTOR, 0
            expected.append(lr)
        assert seen == expected and min(seen) < lr0  # it did reduce the rate
