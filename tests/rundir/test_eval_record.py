"""What evaluation writes is what vaelik.rundir declares: eval.json keys, columns, arrays, posterior.nc.

Tiny one-epoch fits (about 5-15 s in all, so ``slow``); each writes a real run directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaelik.inference import TrainConfig, fit
from vaelik.rundir import (
    EVAL_FILE,
    EVAL_KEYS,
    IMAGE_ARRAYS,
    IMAGES_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    PER_DIM_COLUMNS,
    PER_DIM_FILE,
    PER_DIM_TRAIN_COLUMNS,
    POINTWISE_COLUMNS,
    POINTWISE_FILE,
    POSTERIOR_FILE,
    EvalRecord,
    PpcaRecord,
    Status,
    read_json,
    read_status,
)
from vaelik.rundir import posterior as post

DOCS = Path(__file__).resolve().parents[2] / "docs" / "run-directory.md"
TINY = {"epochs": 1, "hidden_dim": 8, "latent_dim": 2, "iwae_samples": 5, "elbo": "meanfield"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evalrecord")
    cases = {
        "bayesian": {"likelihood": "normal", "scale": "bayesian"},
        "linear": {"likelihood": "normal", "scale": "learned", "model": "linear", "data": "ppca"},
        "ae": {"likelihood": "bernoulli", "model": "ae"},
    }
    for name, options in cases.items():
        fit(TrainConfig(**TINY, **options, name=name), root / name, progress=False)
    return {name: root / name for name in cases}


@pytest.mark.slow
def test_eval_json_keys_are_the_record(runs):
    required, optional = EvalRecord.__required_keys__, EvalRecord.__optional_keys__
    assert set(EVAL_KEYS) == required | optional and optional == {"seconds_train", "ppca"}
    for name, run in runs.items():
        assert Status.is_completed(read_status(run)), name
        keys = set(read_json(run / EVAL_FILE))
        assert required <= keys, (name, required - keys)
        assert keys <= set(EVAL_KEYS), (name, keys - set(EVAL_KEYS))
        assert "seconds_train" in keys
    ppca = read_json(runs["linear"] / EVAL_FILE)["ppca"]
    # the keys of the record; the ones for fewer active directions than k only when so
    assert PpcaRecord.__required_keys__ <= set(ppca) <= set(PpcaRecord.__annotations__)
    active = {"sigma2_ml_active", "active_components", "ml_log_px_train_active"}
    assert set(PpcaRecord.__annotations__) - set(ppca) <= active
    assert {"exact_log_px_val", "ml_log_px_val", "elbo_exact_val"} <= set(ppca)  # a validation split
    assert "ppca" not in read_json(runs["bayesian"] / EVAL_FILE)


@pytest.mark.slow
def test_tables_and_arrays_follow_the_schema(runs):
    for run in runs.values():
        assert tuple(pd.read_csv(run / METRICS_FILE).columns) == METRICS_COLUMNS
        assert tuple(pd.read_csv(run / POINTWISE_FILE).columns) == POINTWISE_COLUMNS
        assert tuple(pd.read_csv(run / PER_DIM_FILE).columns) == PER_DIM_COLUMNS + PER_DIM_TRAIN_COLUMNS
        with np.load(run / IMAGES_FILE, allow_pickle=False) as npz:
            assert tuple(npz.files) == IMAGE_ARRAYS


@pytest.mark.slow
def test_posterior_stores_draws_only_for_a_posterior(runs):
    learned = post.load_run_data(runs["linear"] / POSTERIOR_FILE)  # a learned σ: a point estimate
    assert post.scale_draws(learned) is None
    assert post.scale_point(learned) == pytest.approx(read_json(runs["linear"] / EVAL_FILE)["scale"])
    bayes = post.load_run_data(runs["bayesian"] / POSTERIOR_FILE)
    draws = post.scale_draws(bayes)
    assert post.scale_point(bayes) is None and draws.size == 5 and np.ptp(draws) > 0
    assert not (runs["ae"] / POSTERIOR_FILE).exists()  # no log p(x) estimate for a Delta guide


def test_every_eval_key_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z0-9_]+)`", text))
    assert set(EVAL_KEYS) <= documented, set(EVAL_KEYS) - documented
    for key in EVAL_KEYS:  # and in the record's own docstring
        assert re.search(rf"\b{key}\b", EvalRecord.__doc__), key
