"""Data sets: built-ins, their recorded parameters, the split, and the file readers."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from vaelik.errors import InputError
from vaelik.inference import load_data, read_idx


def rows(ds):
    """All rows of a data set (train then test) as a set of tuples."""
    return {tuple(r) for r in torch.cat([ds.train, ds.test]).tolist()}


def test_digits_shape_and_scaling():
    from sklearn.datasets import load_digits

    ds = load_data("digits", test_fraction=0.2)
    assert ds.train.shape == (1438, 64) and ds.test.shape == (359, 64)  # round(1797 · 0.2)
    assert ds.train.dtype == torch.float32 and ds.image_shape == (1, 8, 8)
    x = torch.cat([ds.train, ds.test])
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # exactly the bundled pixel values (0..16) divided by 16, as the info says
    raw = load_digits().data
    assert_close(torch.sort(x.sum(1)).values,
                 torch.sort(torch.from_numpy(raw.sum(1) / 16).float()).values)
    assert set((x * 16).unique().tolist()) <= set(range(17))
    info = ds.info()
    assert info["dim"] == 64 and info["binary"] is False and "16" in info["scaling"]
    assert info["image_shape"] == [1, 8, 8] and info["levels"] == 17 and ds.levels == 17
    assert info["split"] == "random"


def test_digits_binary_is_binary():
    ds = load_data("digits-binary")
    grey = load_data("digits")
    x = torch.cat([ds.train, ds.test])
    assert set(x.unique().tolist()) == {0.0, 1.0} and ds.binary
    # same split and rows as digits, thresholded at 0.5
    assert_close(ds.train, (grey.train > 0.5).float())
    assert ds.info()["params"] == {"threshold": 0.5} and ds.levels == 2


@pytest.mark.parametrize("name, level_key", [("ppca", "sigma"), ("laplace-noise", "b")])
def test_synthetic_parameters_recorded(name, level_key):
    opts = {"n": 300, "d": 7, "k": 2, level_key: 0.05}
    ds = load_data(name, options=opts)
    params = ds.info()["params"]
    assert params == {**opts, "data_seed": 0}
    assert ds.train.shape[1] == 7 and ds.train.shape[0] + ds.test.shape[0] == 300
    default = load_data(name).info()["params"]
    assert default == {"n": 2000, "d": 20, "k": 4, level_key: 0.1, "data_seed": 0}


def test_ppca_noise_level_matches_sigma():
    """x = Wz + μ + ε: the d − k smallest covariance eigenvalues are σ² (up to sampling)."""
    ds = load_data("ppca", options={"n": 4000, "d": 12, "k": 3, "sigma": 0.2})
    x = torch.cat([ds.train, ds.test]).double()
    evals = torch.linalg.eigvalsh(torch.cov(x.T))
    assert float(evals[:9].mean()) == pytest.approx(0.04, rel=0.1)
    assert float(evals[9:].min()) > 0.2  # the signal directions stand out


def test_laplace_noise_is_laplace():
    """Residuals after removing the k-dimensional signal have kurtosis ~ 6 (Laplace), not 3."""
    ds = load_data("laplace-noise", options={"n": 4000, "d": 12, "k": 3, "b": 0.2})
    x = torch.cat([ds.train, ds.test]).double()
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    r = x @ evecs[:, :9]  # the noise subspace: mixtures of Laplace noise, variance 2b²
    assert float(evals[:9].mean()) == pytest.approx(2 * 0.2**2, rel=0.1)
    assert float(((r / r.std(0)) ** 4).mean()) > 3.5


def test_split_is_deterministic_from_seed():
    a, b = load_data("digits", seed=3), load_data("digits", seed=3)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    c = load_data("digits", seed=4)
    assert not torch.equal(a.test, c.test)
    assert rows(a) == rows(c)  # the same data, split differently
    # synthetic data depend on data_seed, not on the split seed
    p, q = load_data("ppca", seed=0), load_data("ppca", seed=1)
    assert rows(p) == rows(q) and not torch.equal(p.test, q.test)
    r = load_data("ppca", options={"data_seed": 1})
    assert rows(p) != rows(r)


@pytest.mark.parametrize("fraction, n_test", [(0.2, 8), (0.5, 20), (0.01, 1)])
def test_test_fraction(tmp_path, fraction, n_test):
    np.save(tmp_path / "x.npy", np.arange(120, dtype=np.float32).reshape(40, 3))
    ds = load_data(str(tmp_path / "x.npy"), test_fraction=fraction)
    assert ds.test.shape[0] == n_test and ds.train.shape[0] == 40 - n_test


# ----------------------------------------------------------------------------------------
# Files


def test_npy_float_is_used_as_is(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 4, 5)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"), test_fraction=0.1)
    assert ds.image_shape == (1, 4, 5) and ds.dim == 20 and ds.levels is None
    assert rows(ds) == {tuple(r) for r in torch.from_numpy(x.reshape(30, 20)).float().tolist()}


def test_npy_uint8_divided_by_255(tmp_path):
    x = np.arange(60, dtype=np.uint8).reshape(10, 6) * 4
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"))
    assert ds.scaling == "uint8 divided by 255" and ds.levels == 256
    expected = {tuple(r) for r in torch.from_numpy(x.astype(np.float32) / 255).tolist()}
    assert rows(ds) == expected


def test_npy_int_divided_by_max(tmp_path):
    x = np.array([[0, 3], [6, 12], [9, 1]], dtype=np.int64)
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"))
    assert rows(ds) == {(0.0, 0.25), (0.5, 1.0), (0.75, float(np.float32(1 / 12)))}
    assert ds.levels == 13  # values k / 12, k = 0..12


def test_npz_key(tmp_path):
    a = np.ones((5, 2), dtype=np.float32)
    b = np.zeros((6, 3), dtype=np.float32)
    np.savez(tmp_path / "one.npz", data=b)
    np.savez(tmp_path / "two.npz", a=a, b=b)
    assert load_data(str(tmp_path / "one.npz")).dim == 3
    assert load_data(str(tmp_path / "two.npz"), key="a").dim == 2
    with pytest.raises(InputError, match="holds 2 arrays"):
        load_data(str(tmp_path / "two.npz"))
    with pytest.raises(InputError, match="no array 'c'"):
        load_data(str(tmp_path / "two.npz"), key="c")


def write_idx(path, array: np.ndarray, type_code=0x08, big_endian_dtype=">u1", gz=False):
    """An MNIST IDX file written by hand: magic 0 0 type ndim, big-endian sizes, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(big_endian_dtype).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_uint8_images(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, size=(12, 3, 4), dtype=np.uint8)
    path = tmp_path / ("imgs-idx3-ubyte" + (".gz" if gz else ""))
    write_idx(path, images, gz=gz)
    assert np.array_equal(read_idx(path), images)
    ds = load_data(str(path), test_fraction=0.25)
    assert ds.image_shape == (1, 3, 4) and ds.train.shape == (9, 12) and ds.test.shape == (3, 12)
    assert ds.levels == 256
    expected = {tuple(r) for r in torch.from_numpy(images.reshape(12, 12) / 255).float().tolist()}
    assert rows(ds) == expected


def test_idx_float32(tmp_path):
    values = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    write_idx(tmp_path / "v-idx2-float", values, type_code=0x0D, big_endian_dtype=">f4")
    assert np.array_equal(read_idx(tmp_path / "v-idx2-float"), values)


def test_idx_truncated_and_bad_magic(tmp_path):
    images = np.zeros((4, 2, 2), dtype=np.uint8)
    path = tmp_path / "t-idx3-ubyte"
    write_idx(path, images)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputError, match="truncated IDX file"):
        read_idx(path)
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 20)
    with pytest.raises(InputError, match="bad magic"):
        read_idx(tmp_path / "bad-idx3-ubyte")
