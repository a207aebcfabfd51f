"""Resume (issue #6): checkpoints every epoch, SIGKILL mid-epoch, bit-for-bit continuation.

The resumed run must give the same ``metrics.csv`` and ``eval.json`` as an
uninterrupted run with the same seed, bit for bit on CPU, except the wall-time
columns (``seconds`` in metrics.csv, ``seconds_*`` in eval.json); with early
stopping and a learning-rate schedule too (their counters, rates and the best
parameters are in the checkpoint). A resume that
cannot continue (missing, truncated, corrupt or foreign checkpoint, a completed
run) is refused with one line and changes nothing in the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from interrupting import interrupt_after
from waiting import HANG_GUARD_S, wait_for

from vaelik.cli import main
from vaelik.inference import TrainConfig, fit
from vaelik.rundir import read_status, write_json, write_status
from vaelik.rundir.fingerprint import config_sha256

TINY = ["--data", "digits", "--epochs", "6", "--hidden-dim", "32", "--iwae-samples", "20",
        "--seed", "3", "--lr-schedule", "cosine", "--quiet"]


def tree_digest(folder: Path) -> str:
    """Hash of every file name and content under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _vaelik(*args: str) -> list[str]:
    return [sys.executable, "-m", "vaelik.cli", *args]


def _epochs_done(run: Path) -> int:
    try:
        return int(pd.read_csv(run / "metrics.csv")["epoch"].max())
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
        return 0


def _metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns=["seconds"])


def _evaluation(run: Path) -> dict:
    e = json.loads((run / "eval.json").read_text())
    return {k: v for k, v in e.items() if not k.startswith("seconds")}


# ------------------------------------------------------------------------------------------
# SIGKILL in the middle of an epoch, then --resume


@pytest.fixture(scope="module")
def killed_and_reference(tmp_path_factory):
    """Run A uninterrupted and B killed with SIGKILL during epoch >= 3 of 6 (both at once)."""
    root = tmp_path_factory.mktemp("resume")
    a, b = root / "ref", root / "killed"
    # the runs' names are part of their configuration: give both the same one
    ref = subprocess.Popen(_vaelik("train", *TINY, "--out", str(a), "--name", "run"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = subprocess.Popen(_vaelik("train", *TINY, "--out", str(b), "--name", "run"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _epochs_done(b) >= 2, "epoch 2 of the run to kill", proc=victim, poll_s=0.02)
    # land inside the next epoch, not just after the epoch-2 files were written
    seconds = float(pd.read_csv(b / "metrics.csv")["seconds"].iloc[-1])
    time.sleep(min(0.4 * seconds, 1.0))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    _, err = ref.communicate(timeout=HANG_GUARD_S)
    assert ref.returncode == 0, err
    return a, b


@pytest.mark.slow
def test_killed_run_is_not_complete_and_keeps_a_good_checkpoint(killed_and_reference):
    _, b = killed_and_reference
    assert read_status(b) == "running"  # SIGKILL leaves no chance to write anything else
    state = torch.load(b / "checkpoint.pt", weights_only=True)  # whole, thanks to os.replace
    assert 2 <= state["epoch"] < 6
    assert not (b / "eval.json").exists()


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_for_bit(killed_and_reference):
    a, b = killed_and_reference
    killed_at = torch.load(b / "checkpoint.pt", weights_only=True)["epoch"]
    proc = subprocess.run(_vaelik("train", "--resume", str(b), "--quiet"), capture_output=True,
                          text=True, timeout=HANG_GUARD_S, check=False)
    assert proc.returncode == 0, proc.stderr
    assert read_status(b) == "completed"
    resumed, reference = _metrics(b), _metrics(a)
    # each (epoch, split) exactly once, in order
    assert list(zip(resumed["epoch"], resumed["split"])) == [
        (e, s) for e in range(1, 7) for s in ("train", "val", "test")
    ]
    pd.testing.assert_frame_equal(resumed, reference, check_exact=True)
    assert _evaluation(b) == _evaluation(a)
    assert killed_at < 6  # it really was resumed, not rerun from a finished checkpoint


# ------------------------------------------------------------------------------------------
# Early stopping and a schedule: interrupted after any epoch, resumed, the same run

#: flat (lr 1e-8): the plateau schedule halves the rate and early stopping ends the run
STOPPING = dict(data="digits", hidden_dim=8, latent_dim=2, batch_size=256, lr=1e-8,
                iwae_samples=5, scale="learned", seed=1, epochs=14, patience=8,
                lr_schedule="plateau", name="stop")


@pytest.fixture(scope="module")
def stopping_reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("stopping") / "ref"
    fit(TrainConfig(**STOPPING), run, progress=False)
    return run


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)


def test_reference_run_stops_early_after_a_plateau(stopping_reference):
    e = json.loads((stopping_reference / "eval.json").read_text())
    state = _state(stopping_reference)
    assert e["stopped_early"] and e["epochs_run"] < STOPPING["epochs"]
    assert state["schedule"]["factor"] < 1  # the plateau schedule reduced the rate


@pytest.mark.parametrize("killed_after", [2, 5, 7])
def test_resume_with_early_stopping_and_a_schedule_is_bit_for_bit(
        stopping_reference, killed_after, tmp_path, monkeypatch):
    from vaelik.inference import resume

    run = tmp_path / "ref"  # the same folder name: the run's name is part of its config
    with monkeypatch.context() as patch:
        interrupt_after(patch, killed_after)
        with pytest.raises(KeyboardInterrupt):
            fit(TrainConfig(**STOPPING), run, progress=False)
    assert read_status(run) == "interrupted" and _state(run)["epoch"] == killed_after
    resume(run, progress=False)
    assert read_status(run) == "completed"
    pd.testing.assert_frame_equal(_metrics(run), _metrics(stopping_reference), check_exact=True)
    assert _evaluation(run) == _evaluation(stopping_reference)
    resumed, reference = _state(run), _state(stopping_reference)
    for key in ("params",):
        for name, tensor in reference[key].items():
            assert torch.equal(resumed[key][name], tensor), name
    for name, tensor in reference["best"]["params"].items():
        assert torch.equal(resumed["best"]["params"][name], tensor), name
    assert resumed["schedule"] == reference["schedule"]
    assert {k: v for k, v in resumed["best"].items() if k != "params"} == {
        k: v for k, v in reference["best"].items() if k != "params"}


def test_a_run_killed_after_it_stopped_early_trains_no_more(stopping_reference, tmp_path,
                                                           monkeypatch):
    """Killed between the last checkpoint and the evaluation: the resume only evaluates."""
    from vaelik.inference import resume

    last = _state(stopping_reference)["epoch"]
    run = tmp_path / "ref"
    with monkeypatch.context() as patch:
        interrupt_after(patch, last)
        with pytest.raises(KeyboardInterrupt):
            fit(TrainConfig(**STOPPING), run, progress=False)
    resume(run, progress=False)
    assert _metrics(run)["epoch"].max() == last
    assert _evaluation(run) == _evaluation(stopping_reference)


# ------------------------------------------------------------------------------------------
# Refused resumes: one line, exit code 2, nothing in the run directory modified


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory):
    """A real run directory of a 3-epoch fit that 'died' after epoch 2.

    Trained for 2 epochs, then config.json and the checkpoint's config are made
    those of the 3-epoch configuration: exactly what the killed run would have
    left (checkpoint of epoch 2, status ``running``, no eval.json).
    """
    run = tmp_path_factory.mktemp("unfinished") / "run"
    config = TrainConfig(data="digits", epochs=3, hidden_dim=8, iwae_samples=5, name="run")
    fit(TrainConfig(**{**config.to_dict(), "epochs": 2}), run, progress=False, evaluate=False)
    record = {**json.loads((run / "config.json").read_text()), "epochs": 3}
    # the fingerprint of the 3-epoch run (what it would have recorded)
    record["fingerprint"]["config"] = config_sha256(config.to_dict())
    write_json(run / "config.json", record)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["config"] = json.dumps(config.to_dict(), sort_keys=True)
    state["fingerprint"] = json.dumps(record["fingerprint"], sort_keys=True)
    torch.save(state, run / "checkpoint.pt")
    write_status(run, "running")
    return run, record, state


def _copy(unfinished_run, tmp_path: Path) -> Path:
    run, _, _ = unfinished_run
    target = tmp_path / "run"
    shutil.copytree(run, target)
    write_status(target, "running")
    return target


def _refused(run: Path, capfd, *contains: str) -> None:
    before = tree_digest(run)
    code = main(["train", "--resume", str(run), "--quiet"])
    err = capfd.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelik: error: "), err
    for part in contains:
        assert part in lines[0]
    assert tree_digest(run) == before


def test_resume_refuses_missing_checkpoint(unfinished_run, tmp_path, capfd):
    run = _copy(unfinished_run, tmp_path)
    (run / "checkpoint.pt").unlink()
    _refused(run, capfd, "no checkpoint")


def test_resume_refuses_truncated_checkpoint(unfinished_run, tmp_path, capfd):
    run = _copy(unfinished_run, tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    _refused(run, capfd, "corrupt or truncated")


def test_resume_refuses_garbage_checkpoint(unfinished_run, tmp_path, capfd):
    run = _copy(unfinished_run, tmp_path)
    (run / "checkpoint.pt").write_bytes(os.urandom(4096))
    _refused(run, capfd, "corrupt or truncated")


def test_resume_refuses_checkpoint_of_another_configuration(unfinished_run, tmp_path, capfd):
    run = _copy(unfinished_run, tmp_path)
    _, record, _ = unfinished_run
    write_json(run / "config.json", {**record, "lr": 0.01})  # config.json edited afterwards
    _refused(run, capfd, "another configuration")


def test_resume_refuses_checkpoint_of_another_model(unfinished_run, tmp_path, capfd):
    """Same config text but other tensors (e.g. a checkpoint copied from another run)."""
    run = _copy(unfinished_run, tmp_path)
    _, _, state = unfinished_run
    name = min(state["params"])
    state = {**state, "params": {**state["params"], name: torch.zeros(3, 3)}}
    torch.save(state, run / "checkpoint.pt")
    _refused(run, capfd, "checkpoint parameter", "refusing to resume")


def test_resume_refuses_completed_run(unfinished_run, tmp_path, capfd):
    run = _copy(unfinished_run, tmp_path)
    write_status(run, "completed")
    _refused(run, capfd, "already completed")


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path, capfd):
    _refused(tmp_path, capfd, "not a run directory")


def test_resume_continues_with_stored_config(unfinished_run, tmp_path):
    """--resume uses config.json (here: 3 epochs), not the CLI defaults, and finishes the run."""
    run = _copy(unfinished_run, tmp_path)
    stale = run / ".checkpoint.pt.k1ll3d.tmp"  # what a kill during a write leaves
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert read_status(run) == "completed" and (run / "eval.json").exists()
    assert not stale.exists()


def test_checkpoint_rng_state_round_trips_through_weights_only(tmp_path):
    """torch, the batch generator, Python's random (with its cached gauss) and numpy."""
    import random

    import numpy as np

    from vaelik.inference.checkpoint import (
        load_checkpoint,
        rng_state,
        save_checkpoint,
        set_rng_state,
    )

    def draw(gen):
        return (np.random.rand(3).tolist(), random.random(), random.gauss(0, 1),
                torch.rand(2).tolist(), torch.rand(2, generator=gen).tolist())

    gen = torch.Generator().manual_seed(1)
    np.random.seed(5)
    random.seed(3)
    random.gauss(0, 1)  # leaves a cached second value
    save_checkpoint(tmp_path / "c.pt", {"config": "", "epoch": 0, "params": {},
                                        "optimizer": {"state": {}, "param_groups": []},
                                        "metrics": [], "rng": rng_state(gen)})
    first = draw(gen)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], gen)
    assert draw(gen) == first


# ------------------------------------------------------------------------------------------
# A diverging fit keeps its last good checkpoint


def test_divergence_is_caught_within_one_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    """The loss turns NaN at epoch 3, step 3: that step is named, the run is marked
    failed, and checkpoint.pt / metrics.csv still hold epoch 2 (and load)."""
    from vaelik.errors import DivergenceError
    from vaelik.inference import build, svi

    config = TrainConfig(data="digits", epochs=4, hidden_dim=8, iwae_samples=5, batch_size=256,
                         elbo="meanfield", name="div")
    steps = build(config)[0].train.shape[0] // config.batch_size
    poison_at = 2 * steps + 3  # the 3rd step of epoch 3
    real_make_elbo = svi.make_elbo

    class Poisoned:
        def __init__(self, elbo):
            self.elbo, self.calls = elbo, 0

        def __getattr__(self, name):
            return getattr(self.elbo, name)

        def differentiable_loss(self, *args, **kwargs):
            self.calls += 1
            loss = self.elbo.differentiable_loss(*args, **kwargs)
            return loss * float("nan") if self.calls >= poison_at else loss

    monkeypatch.setattr(svi, "make_elbo", lambda name: Poisoned(real_make_elbo(name)))
    run = tmp_path / "div"
    with pytest.raises(DivergenceError) as info:
        fit(config, run, progress=False)
    message = str(info.value)
    assert "at epoch 3, step 3;" in message
    assert "last finite train ELBO" in message and "at epoch 2" in message
    status = read_status(run)
    assert status.startswith("failed: ELBO diverged (non-finite) at epoch 3, step 3;")
    assert status.endswith("last good checkpoint kept")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in state["params"].values())
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 1, 1, 2, 2, 2]
    assert not (run / "eval.json").exists()


def test_evaluate_refuses_a_checkpoint_that_does_not_fit(unfinished_run, tmp_path, capfd):
    """`vaelik evaluate` on a run whose checkpoint tensors have other shapes: one line."""
    run = _copy(unfinished_run, tmp_path)
    _, _, state = unfinished_run
    name = min(state["params"])
    torch.save({**state, "params": {**state["params"], name: torch.zeros(3, 3)}},
               run / "checkpoint.pt")
    (run / "status").write_text("completed\n")  # evaluate only takes completed runs
    before = tree_digest(run)
    assert main(["evaluate", str(run)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match its config.json" in err[0]
    assert tree_digest(run) == before
