"""The whole-epoch benchmark cell compares like with like: the hand loop computes vaelik's epoch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # run.py imports its sibling modules by name
    try:
        spec = importlib.util.spec_from_file_location("epoch_bench", BENCH / "epoch.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_synthetic_data_has_fashion_mnist_sizes_and_8_bit_levels(bench):
    train, val, test = bench.fashion_like(600, 100, d=20)
    assert (train.shape, val.shape, test.shape) == ((540, 20), (60, 20), (100, 20))
    for x in (train, val, test):
        assert ((x * 255).round() == x * 255).all() and x.min() >= 0 and x.max() <= 1


def test_hand_epoch_is_vaelik_train_epochs_bit_for_bit(bench):
    """Same initial weights and RNG: the two loops give the same metric rows, epoch after epoch."""
    import torch

    train, val, test = bench.fashion_like(700, 150, d=36)
    config = bench.make_config(batch=64, hidden_dim=32)
    vaelik = bench.VaelikEpoch(config, train, val, test)
    hand = bench.HandEpoch(config, train, val, test, vaelik.model)
    for _ in range(2):
        torch.manual_seed(3)
        mine = vaelik.run_epoch()
        torch.manual_seed(3)
        theirs = hand.run_epoch()
        assert set(mine) == set(theirs) == {"train", "val", "test"}
        for split, row in theirs.items():
            for key, value in row.items():
                assert mine[split][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (split, key)


def test_time_epochs_reports_a_ratio(bench):
    r = bench.time_epochs(epochs=1, batch=64, n_train=400, n_test=100)
    assert r["ratio"] > 0 and set(r["seconds"]) == {"hand", "vaelik"}
    assert "synthetic" in r["data"] and "360 train + 40 val + 100 test" in r["data"]
