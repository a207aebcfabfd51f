"""Real image sets from tiny files in their real formats; subsets; the data-file bugs of issue 13.

Every file here is written by the test into ``tmp_path`` in the set's own format
(IDX raw and gzipped, CIFAR-10's binary batches); nothing is downloaded. The one
test that reads the real Fashion-MNIST skips where Debian's package is absent.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelik.errors import InputError
from vaelik.inference import TrainConfig, load_data
from vaelik.inference.data import IMAGE_SETS, read_cifar_batch, read_idx
from vaelik.inference.data import images as images_module

IDX_NAMES = {"train-images-idx3-ubyte": "train_x", "train-labels-idx1-ubyte": "train_y",
             "t10k-images-idx3-ubyte": "test_x", "t10k-labels-idx1-ubyte": "test_y"}


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """An IDX file by hand: magic ``0 0 0x08 ndim``, big-endian uint32 sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path = path.with_name(path.name + ".gz") if gz else path
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return path


def idx_set(folder: Path, n_train=20, n_test=7, hw=(6, 5), gz=True, seed=0, offset=0) -> dict:
    """The four IDX files of an MNIST-like set in ``folder``; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, size=(n_train, *hw), dtype=np.uint8),
              "train_y": rng.integers(0, 10, size=n_train, dtype=np.uint8),
              "test_x": rng.integers(0, 256, size=(n_test, *hw), dtype=np.uint8),
              "test_y": rng.integers(0, 10, size=n_test, dtype=np.uint8)}
    arrays["train_x"][:, 0, 0] = offset  # marks which folder a set was read from
    for name, key in IDX_NAMES.items():
        write_idx(folder / name, arrays[key], gz)
    return arrays


def cifar_set(folder: Path, per_batch=3, n_test=4, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's six binary batches with a few records each; returns (train, test) pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = []
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        n = n_test if name == "test_batch.bin" else per_batch
        pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n, 1), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, pixels.reshape(n, -1)], 1).tobytes())
        batches.append(pixels)
    return np.concatenate(batches[:5]), batches[5]


def as_rows(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.reshape(x.shape[0], -1).astype(np.float32) / 255)


@pytest.fixture(autouse=True)
def no_system_data(monkeypatch, tmp_path):
    """No real data in the way: $VAELIK_DATA unset, the system folder list empty."""
    monkeypatch.delenv("VAELIK_DATA", raising=False)
    monkeypatch.setattr(images_module, "SYSTEM_DATA_DIRS", ())


# ------------------------------------------------------------------------------------------
# Fashion-MNIST and MNIST: the four IDX files


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_set_shapes_scaling_and_official_split(tmp_path, name, gz):
    arrays = idx_set(tmp_path / "d", gz=gz)
    ds = load_data(name, data_dir=tmp_path / "d", val_fraction=0.25, test_fraction=0.5, seed=3)
    # the official split: the 7 test images in file order; test_fraction is not used;
    # the validation split, round(20 · 0.25) = 5 rows, comes from the training images
    assert ds.test.shape == (7, 30) and ds.val.shape == (5, 30) and ds.train.shape == (15, 30)
    assert ds.train.dtype == ds.test.dtype == torch.float32
    assert torch.equal(ds.test, as_rows(arrays["test_x"]))
    train_rows = {tuple(r) for r in as_rows(arrays["train_x"]).tolist()}
    assert {tuple(r) for r in torch.cat([ds.train, ds.val]).tolist()} == train_rows
    # grey levels k become k / (levels - 1)
    assert ds.levels == 256 and ds.image_shape == (1, 6, 5) and ds.split == "official"
    assert set((ds.test * 255).round().unique().tolist()) <= set(range(256))
    info = ds.info()
    assert info["image_shape"] == [1, 6, 5] and info["levels"] == 256
    assert info["split"] == "official" and info["source"] == str(tmp_path / "d")
    assert (info["n_train"], info["n_val"], info["n_test"]) == (15, 5, 7)
    # the seed moves rows between train and validation only
    other = load_data(name, data_dir=tmp_path / "d", val_fraction=0.25, seed=4)
    assert torch.equal(other.test, ds.test) and not torch.equal(other.val, ds.val)


def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
    monkeypatch.setattr(images_module, "SYSTEM_DATA_DIRS", ("/usr/share/datasets",))
    ds = load_data("fashion-mnist", val_fraction=0.1)
    assert (ds.train.shape, ds.val.shape, ds.test.shape) == ((54000, 784), (6000, 784),
                                                             (10000, 784))
    assert ds.levels == 256 and ds.image_shape == (1, 28, 28) and ds.source == str(folder)
    assert float(ds.test.min()) == 0.0 and float(ds.test.max()) == 1.0


def test_lookup_order_data_dir_then_env_then_system(tmp_path, monkeypatch):
    for place, mark in (("given", 1), ("env", 2), ("system", 3)):
        idx_set(tmp_path / place / "fashion-mnist", offset=mark)
    monkeypatch.setattr(images_module, "SYSTEM_DATA_DIRS", (str(tmp_path / "nothing"),
                                                            str(tmp_path / "system")))

    def mark(**kwargs):
        ds = load_data("fashion-mnist", val_fraction=0, **kwargs)
        return round(float(ds.train[0, 0]) * 255), ds.source

    assert mark() == (3, str(tmp_path / "system" / "fashion-mnist"))
    monkeypatch.setenv("VAELIK_DATA", f"{tmp_path / 'empty'}{os.pathsep}{tmp_path / 'env'}")
    assert mark() == (2, str(tmp_path / "env" / "fashion-mnist"))  # $VAELIK_DATA first
    assert mark(data_dir=tmp_path / "given")[0] == 1  # --data-dir before both
    assert mark(data_dir=tmp_path / "given" / "fashion-mnist")[0] == 1  # the folder itself
    # a --data-dir without the files is an error, not a fall-back to the others
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="--data-dir .*empty holds no fashion-mnist files"):
        load_data("fashion-mnist", data_dir=tmp_path / "empty")
    with pytest.raises(InputError, match="is not a folder"):
        load_data("fashion-mnist", data_dir=tmp_path / "no-such-folder")


def test_missing_set_is_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "SYSTEM_DATA_DIRS", (str(tmp_path / "sys"),))
    with pytest.raises(InputError) as e:
        load_data("fashion-mnist")
    text = str(e.value)
    assert "\n" not in text and "apt-get install dataset-fashion-mnist" in text
    assert "--data-dir" in text and str(tmp_path / "sys" / "fashion-mnist") in text
    assert "downloads nothing" in text
    for name in ("mnist", "cifar10"):
        with pytest.raises(InputError, match="--data-dir FOLDER") as e:
            load_data(name)
        assert "\n" not in str(e.value)


def test_part_of_a_set_names_the_missing_files(tmp_path):
    idx_set(tmp_path / "d")
    os.remove(tmp_path / "d" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(InputError, match=r"only part of mnist: it lacks t10k-images-idx3-ubyte\(.gz\)"):
        load_data("mnist", data_dir=tmp_path / "d")


def test_a_label_file_in_place_of_images_is_refused(tmp_path):
    arrays = idx_set(tmp_path / "d", gz=False)
    write_idx(tmp_path / "d" / "train-images-idx3-ubyte", arrays["train_y"], gz=False)
    with pytest.raises(InputError, match="label file renamed"):
        load_data("mnist", data_dir=tmp_path / "d")


# ------------------------------------------------------------------------------------------
# CIFAR-10, binary version


def test_cifar10_channel_major_records_and_official_split(tmp_path):
    train, test = cifar_set(tmp_path / "cifar-10-batches-bin")
    assert np.array_equal(read_cifar_batch(tmp_path / "cifar-10-batches-bin" / "test_batch.bin"),
                          test)
    ds = load_data("cifar10", data_dir=tmp_path, val_fraction=0.2)  # finds cifar-10-batches-bin/
    assert ds.image_shape == (3, 32, 32) and ds.levels == 256 and ds.dim == 3072
    assert ds.test.shape == (4, 3072) and ds.val.shape == (3, 3072) and ds.train.shape == (12, 3072)
    assert torch.equal(ds.test, as_rows(test))  # labels dropped; R, G, B planes in order
    assert {tuple(r) for r in torch.cat([ds.train, ds.val]).tolist()} == {
        tuple(r) for r in as_rows(train).tolist()}
    # a record's pixel (channel c, row i, column j) is byte 1 + 1024 c + 32 i + j
    raw = (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    assert ds.test[0].reshape(3, 32, 32)[2, 5, 7] == np.float32(raw[1 + 1024 * 2 + 32 * 5 + 7]) / 255


def test_cifar10_truncated_batch(tmp_path):
    cifar_set(tmp_path / "c")
    path = tmp_path / "c" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match="not a whole number of 3073-byte records"):
        load_data("cifar10", data_dir=tmp_path / "c")


# ------------------------------------------------------------------------------------------
# Subsets: --data-opt n=N (and n_test=N for an official test set)


def test_subset_of_an_official_set(tmp_path):
    arrays = idx_set(tmp_path / "d", n_train=30, n_test=12)
    ds = load_data("fashion-mnist", data_dir=tmp_path / "d", val_fraction=0.2,
                   options={"n": 10, "n_test": 5}, seed=7)
    keep = np.sort(np.random.default_rng([0, 0]).permutation(30)[:10])
    keep_test = np.sort(np.random.default_rng([0, 1]).permutation(12)[:5])
    assert torch.equal(ds.test, as_rows(arrays["test_x"][keep_test]))
    assert {tuple(r) for r in torch.cat([ds.train, ds.val]).tolist()} == {
        tuple(r) for r in as_rows(arrays["train_x"][keep]).tolist()}
    assert ds.val.shape[0] == 2 and ds.info()["params"] == {"n": 10, "n_test": 5, "subset_seed": 0}
    # the subset does not depend on --seed, only on subset_seed
    again = load_data("fashion-mnist", data_dir=tmp_path / "d", options={"n": 10, "n_test": 5},
                      seed=1)
    assert torch.equal(again.test, ds.test)
    moved = load_data("fashion-mnist", data_dir=tmp_path / "d",
                      options={"n": 10, "n_test": 5, "subset_seed": 1})
    assert not torch.equal(moved.test, ds.test)
    # every row: the same as no subset
    full = load_data("fashion-mnist", data_dir=tmp_path / "d", options={"n": 30, "n_test": 12})
    plain = load_data("fashion-mnist", data_dir=tmp_path / "d")
    assert torch.equal(full.train, plain.train) and torch.equal(full.test, plain.test)
    with pytest.raises(InputError, match="n_test=13 is more than the 12 official test rows"):
        load_data("fashion-mnist", data_dir=tmp_path / "d", options={"n_test": 13})
    with pytest.raises(InputError, match="unknown data option.*allowed: n, n_test, subset_seed, threshold"):
        load_data("fashion-mnist", data_dir=tmp_path / "d", options={"sigma": 1})


def test_threshold_binarises_an_official_set(tmp_path):
    arrays = idx_set(tmp_path / "d", n_train=30, n_test=12)
    ds = load_data("fashion-mnist", data_dir=tmp_path / "d", options={"threshold": 0.5, "n_test": 5})
    keep_test = np.sort(np.random.default_rng([0, 1]).permutation(12)[:5])
    expected = (arrays["test_x"][keep_test].reshape(5, -1) / 255.0 > 0.5).astype(np.float32)
    assert torch.equal(ds.test, torch.from_numpy(expected))
    assert ds.levels == 2 and ds.binary and ds.image_shape == (1, 6, 5)
    assert ds.info()["params"] == {"threshold": 0.5, "n": None, "n_test": 5, "subset_seed": 0}
    # the same images as the grey levels: thresholding commutes with the split
    grey = load_data("fashion-mnist", data_dir=tmp_path / "d", options={"n_test": 5})
    assert torch.equal(ds.test, (grey.test > 0.5).float()) and torch.equal(ds.train, (grey.train > 0.5).float())
    for bad in (1.0, -0.1, "half", True):
        with pytest.raises(InputError, match="data option threshold of 'fashion-mnist' must be a number in"):
            load_data("fashion-mnist", data_dir=tmp_path / "d", options={"threshold": bad})


def test_subset_of_digits_and_of_a_file(tmp_path):
    ds = load_data("digits", options={"n": 100}, test_fraction=0.2)
    assert ds.train.shape[0] + ds.test.shape[0] == 100 and ds.test.shape[0] == 20
    x = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    np.save(tmp_path / "x.npy", x)
    sub = load_data(str(tmp_path / "x.npy"), options={"n": 10, "subset_seed": 2})
    keep = np.sort(np.random.default_rng([2, 0]).permutation(50)[:10])
    assert {tuple(r) for r in torch.cat([sub.train, sub.test]).tolist()} == {
        tuple(r) for r in x[keep].tolist()}
    with pytest.raises(InputError, match="n=2000 is more than the 1797 rows of digits"):
        load_data("digits", options={"n": 2000})
    with pytest.raises(InputError, match="allowed: n, subset_seed"):
        load_data(str(tmp_path / "x.npy"), options={"sigma": 0.1})


# ------------------------------------------------------------------------------------------
# A user's images keep their layout


def test_user_images_keep_channels(tmp_path):
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, size=(10, 3, 4, 5), dtype=np.uint8)
    np.save(tmp_path / "chw.npy", chw)
    np.save(tmp_path / "hwc.npy", np.moveaxis(chw, 1, 3))  # (n, H, W, C)
    a, b = (load_data(str(tmp_path / f), test_fraction=0.2) for f in ("chw.npy", "hwc.npy"))
    assert a.image_shape == b.image_shape == (3, 4, 5) and a.levels == 256
    assert torch.equal(a.train, b.train) and "channel-last" in b.scaling
    np.save(tmp_path / "flat.npy", rng.normal(size=(10, 4, 5, 6)))  # not an image layout
    assert load_data(str(tmp_path / "flat.npy")).image_shape is None


# ------------------------------------------------------------------------------------------
# Issue 13: data-file bugs


def test_negative_integers_are_refused(tmp_path):
    np.save(tmp_path / "neg.npy", np.array([[0, 3], [-51, 10], [4, 2]], dtype=np.int16))
    with pytest.raises(InputError, match=r"negative integers \(smallest -51, first in row 1\)"):
        load_data(str(tmp_path / "neg.npy"))


def test_values_beyond_float32_are_said_to_overflow(tmp_path):
    x = np.ones((6, 3))
    x[4, 1] = 1e300
    np.save(tmp_path / "big.npy", x)
    with pytest.raises(InputError, match="overflow float32.*first in row 4") as e:
        load_data(str(tmp_path / "big.npy"))
    assert "inf" not in str(e.value).replace("float32", "")


def test_idx_is_decided_by_magic_or_suffix_not_a_substring(tmp_path):
    (tmp_path / "my-idx-notes.txt").write_text("1 2 3\n")
    with pytest.raises(InputError, match="unsupported data file"):
        load_data(str(tmp_path / "my-idx-notes.txt"))
    # an IDX file under any name is read by its magic number
    images = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3)
    path = write_idx(tmp_path / "plain.bin", images, gz=False)
    assert np.array_equal(read_idx(path), images)
    ds = load_data(str(path), test_fraction=0.25)
    assert ds.image_shape == (1, 2, 3) and ds.levels == 256
    gz = write_idx(tmp_path / "other", images, gz=True)  # other.gz
    assert load_data(str(gz)).image_shape == (1, 2, 3)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "data-idx3-ubyte"
    os.mkfifo(fifo)
    errors = []

    def load():
        try:
            load_data(str(fifo))
        except InputError as e:
            errors.append(str(e))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=300)  # a generous bound: opening a FIFO would block for ever
    if worker.is_alive():
        with open(fifo, "wb"):  # release the blocked reader before failing
            pass
        pytest.fail("load_data blocked on a FIFO")
    assert len(errors) == 1 and "FIFO" in errors[0] and "not a regular file" in errors[0]


@pytest.mark.parametrize("damage", ["truncate", "crc"])
def test_damaged_npz_is_one_input_error(tmp_path, damage):
    np.savez(tmp_path / "x.npz", x=np.arange(400, dtype=np.float32).reshape(100, 4))
    raw = bytearray((tmp_path / "x.npz").read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[300] ^= 0xFF  # inside the stored array: the CRC no longer matches
    (tmp_path / "x.npz").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="archive is damaged") as e:
        load_data(str(tmp_path / "x.npz"))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------
# The configuration, a fit, and the figures


def test_data_dir_option(tmp_path):
    assert TrainConfig(data_dir=str(tmp_path)).check().data_dir == str(tmp_path)
    with pytest.raises(InputError, match="data-dir must be a folder path"):
        TrainConfig(data_dir=3).check()


def test_fit_records_image_shape_and_levels(tmp_path):
    from vaelik.inference import fit

    idx_set(tmp_path / "d", n_train=40, n_test=10, hw=(4, 4))
    config = TrainConfig(data="mnist", data_dir=str(tmp_path / "d"), epochs=1, hidden_dim=8,
                         latent_dim=2, batch_size=16, iwae_samples=4, val_fraction=0.25)
    fit(config, out=tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["data_dir"] == str(tmp_path / "d")
    info = record["data_info"]
    assert info["image_shape"] == [1, 4, 4] and info["levels"] == 256
    assert (info["n_train"], info["n_val"], info["n_test"], info["split"]) == (30, 10, 10,
                                                                               "official")
    with np.load(tmp_path / "run" / "images.npz") as npz:
        assert npz["image_shape"].tolist() == [1, 4, 4] and npz["originals"].shape[1] == 16


@pytest.mark.parametrize("shape", [(1, 4, 5), (3, 4, 5), (4, 5)])
def test_figures_draw_grey_and_colour_images(shape):
    import pandas as pd

    from vaelik.analysis.figures import plot_prior_samples, plot_reconstructions, plot_scale_heatmap

    d = int(np.prod(shape))
    rng = np.random.default_rng(0)
    arrays = {"originals": rng.uniform(size=(3, d)), "reconstructions": rng.uniform(size=(3, d)),
              "prior_samples": rng.uniform(size=(3, d)), "image_shape": np.array(shape)}
    fig = plot_reconstructions({"run": arrays}, n=3)
    drawn = fig.axes[0].images[0].get_array().shape
    assert drawn == ((4, 5, 3) if shape[0] == 3 else (4, 5))
    assert plot_prior_samples({"run": arrays}, n=3).axes[0].images
    per_dim = pd.DataFrame({"run": "r", "dim": np.arange(d), "sigma": rng.uniform(size=d),
                            "image_shape": "x".join(map(str, shape)), "symbol": "σ",
                            "scale_mode": "per_dim"})
    heat = plot_scale_heatmap(per_dim).axes[0].images[0].get_array().shape
    assert heat == (4, 5 * (shape[0] if len(shape) == 3 else 1))


def test_image_sets_are_builtin_choices():
    from vaelik.inference import BUILTIN_DATA

    assert set(IMAGE_SETS) <= set(BUILTIN_DATA)
    assert IMAGE_SETS["fashion-mnist"].folders == ("fashion-mnist",)
