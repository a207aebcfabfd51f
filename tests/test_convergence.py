"""The convergence verdict: the pure judge on synthetic metric rows, and a short real run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vaelik.inference.convergence import (
    ELBO_RISE,
    ELBO_WINDOW,
    RATIO_TOL,
    Convergence,
    judge_convergence,
)


def rows(elbos, split="train", test_elbos=None):
    """metrics.csv rows: one per epoch for ``split`` (and a test row that must be ignored)."""
    out = []
    for epoch, elbo in enumerate(elbos, start=1):
        out.append({"epoch": epoch, "split": split, "elbo": elbo, "seconds": 0.1})
        out.append({"epoch": epoch, "split": "test",
                    "elbo": (test_elbos[epoch - 1] if test_elbos else elbo), "seconds": 0.1})
    return out


FLAT = [-20.0, -10.0, -5.0, -3.0, -2.99, -3.01, -3.0, -2.995, -3.005, -3.0]


def judge(metrics=None, **kw):
    kw.setdefault("scale_mode", "learned")
    kw.setdefault("active_units", 4)
    kw.setdefault("latent_dim", 4)
    return judge_convergence(rows(FLAT) if metrics is None else metrics, **kw)


def test_flat_elbo_converges():
    verdict = judge()
    assert verdict == Convergence(True, [], [])
    assert verdict.to_record() == {"converged": True, "convergence_reasons": [], "convergence_notes": []}
    assert verdict.warning() is None


def test_rising_elbo_is_a_reason_naming_the_split_and_what_to_change():
    rising = [-20.0 + 0.8 * e for e in range(12)]
    verdict = judge(rows(rising))
    assert not verdict.converged and len(verdict.reasons) == 1
    reason = verdict.reasons[0]
    assert reason.startswith("training ELBO still rising by 0.8 nats/epoch")
    assert f"last {ELBO_WINDOW} epochs" in reason and "raise --epochs" in reason
    # the validation split wins when present; the test split is never read
    val = rows(FLAT, split="val") + [{**r, "split": "train"} for r in rows(rising) if r["split"] == "train"]
    assert judge(val).converged
    assert judge(rows(rising, split="val")).reasons[0].startswith("validation ELBO still rising")
    assert judge(rows(FLAT, test_elbos=rising)).converged


def test_rise_below_the_threshold_or_inside_the_noise_is_not_a_reason():
    slow = [-3.0 + 0.5 * ELBO_RISE * e for e in range(8)]
    assert judge(rows(slow)).converged
    noisy = [-3.0 + 0.3 * (-1) ** e for e in range(8)]  # ±0.3 nats of noise on a flat ELBO
    assert judge(rows(noisy)).converged


def test_one_epoch_cannot_be_judged():
    verdict = judge(rows([-50.0]))
    assert not verdict.converged and "only 1 epoch" in verdict.reasons[0]


def test_no_metrics_is_a_note():
    verdict = judge([])
    assert verdict.converged and "not judged" in verdict.notes[0]


def test_scale_ratio_off_on_the_training_split_is_a_reason():
    verdict = judge(train_ratio=1.42, ratio_label="σ²/MSE")
    assert verdict.reasons == [
        f"σ²/MSE = 1.42 on the training split (|·−1| > {RATIO_TOL:g}): the scale lags the decoder; "
        "raise --scale-lr-factor or --epochs"]
    assert judge(train_ratio=1.05, ratio_label="σ²/MSE").converged
    assert "b/MAE = 0.8" in judge(train_ratio=0.8, ratio_label="b/MAE").reasons[0]
    assert judge(train_ratio=None).converged and judge(train_ratio=math.nan).converged


def test_scales_at_the_floor():
    spread = [0.0, 0.0, 0.2, 0.3]
    # on dimensions whose data vary: a reason
    verdict = judge(scale_mode="per_dim", scales=[0.1, 0.1, 1e-3, 0.2], min_scale=1e-3, train_spread=spread)
    assert not verdict.converged
    assert "floor min_scale=0.001 on 1 of 4 dimensions where the training data vary" in verdict.reasons[0]
    # on constant dimensions: a note, the data put it there
    verdict = judge(scale_mode="per_dim", scales=[1e-3, 1.005e-3, 0.2, 0.2], min_scale=1e-3,
                    train_spread=spread)
    assert verdict.converged and "the data put it there" in verdict.notes[0]
    assert "2 of 4 dimensions" in verdict.notes[0]
    # one global scale at the floor while the data vary; a fixed scale is the user's choice
    assert not judge(scales=[1e-3], min_scale=1e-3, train_spread=spread).converged
    assert judge(scale_mode="fixed", scales=[1e-3], min_scale=1e-3, train_spread=spread).converged


def test_no_active_units_is_a_note_at_a_fixed_scale_and_a_reason_otherwise():
    fixed = judge(scale_mode="fixed", active_units=0, latent_dim=8)
    assert fixed.converged and "posterior collapse is the optimum" in fixed.notes[0]
    learned = judge(scale_mode="learned", active_units=0, latent_dim=8)
    assert not learned.converged and learned.reasons[0].startswith("no active units (0 of 8")


def test_warning_names_the_first_reason_and_counts_the_others():
    verdict = judge(rows([-50.0]), train_ratio=2.0, ratio_label="σ²/MSE")
    assert len(verdict.reasons) == 2
    assert verdict.warning() == f"run did not converge: {verdict.reasons[0]} (+1 more in eval.json)"


SHORT = ["--data", "digits", "--likelihood", "normal", "--scale", "learned", "--epochs", "2",
         "--hidden-dim", "8", "--latent-dim", "2", "--iwae-samples", "5"]


@pytest.mark.slow
def test_short_run_does_not_converge_and_the_report_leaves_it_out(tmp_path, capsys, monkeypatch):
    """--epochs 2: converged false in eval.json, one warning line (also with --quiet), left out of the report."""
    from vaelik.cli import main

    runs = tmp_path / "runs"
    assert main(["train", *SHORT, "--out", str(runs / "short"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    evaluation = json.loads((runs / "short" / "eval.json").read_text())
    assert evaluation["converged"] is False and evaluation["convergence_reasons"]
    first = evaluation["convergence_reasons"][0]
    assert "ELBO still rising" in first and "raise --epochs" in first
    assert len(err) == 1 and err[0].startswith("vaelik train: warning: run did not converge: ")
    assert first in err[0]
    assert main(["evaluate", str(runs / "short"), "--iwae-samples", "5"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaelik evaluate: warning: run did not converge: ")

    pytest.importorskip("vaelik.analysis")
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "analysis"))
    from analysis_fixtures import make_run  # the synthetic run writer of the analysis tests

    from vaelik.analysis import write_report

    make_run(runs, "converged-laplace", likelihood="laplace", sigma=0.08, mae=0.08)
    report = write_report(runs, tmp_path / "report.html", tmp_path / "report.md")
    assert list(report.left_out["run"]) == ["short"]
    assert report.left_out["reason"][0].startswith(f"not converged: {first}")
    assert report.basis.startswith("The claims rest on 1 of 2 completed runs; 1 of 2 left out: not converged")
    md = report.markdown.read_text(encoding="utf-8")
    assert report.basis.split(";")[0] in md and "Runs left out of the claims (1 of 2: not converged)" in md


def test_short_of_a_known_optimum_is_a_reason():
    """The exact log p(x) of the learned parameters against the closed-form optimum's."""
    from vaelik.inference.convergence import OPTIMUM_GAP_ABS, OPTIMUM_GAP_REL

    rows = [{"epoch": e, "split": "val", "elbo": 5.0} for e in range(1, 8)]
    best = 5.74
    allowed = max(OPTIMUM_GAP_REL * best, OPTIMUM_GAP_ABS)  # 0.0574 nats per point
    near = judge_convergence(rows, scale_mode="learned", optimum=(best - 0.9 * allowed, best))
    far = judge_convergence(rows, scale_mode="learned", optimum=(best - 1.1 * allowed, best))
    assert near.converged and not far.converged
    assert far.reasons[0].startswith(f"exact log p(x) on the training split {best - 1.1 * allowed:.4g}")
    # large |log p|: the relative tolerance governs (1 % of 200 = 2 nats)
    assert judge_convergence(rows, scale_mode="learned", optimum=(-201.9, -200.0)).converged
    assert not judge_convergence(rows, scale_mode="learned", optimum=(-202.1, -200.0)).converged
