"""Built-in image sets read from their files: Fashion-MNIST, MNIST and CIFAR-10. Nothing is downloaded.

Where the files are looked for, in this order (the first place holding them wins):

1. ``--data-dir DIR`` (``TrainConfig.data_dir``): when given, only there;
2. ``$VAELIK_DATA`` (one folder, or several joined by ``:``);
3. :data:`SYSTEM_DATA_DIRS`: where Debian's ``dataset-*`` packages install
   data sets (``apt-get install dataset-fashion-mnist`` puts Fashion-MNIST's
   four files in ``/usr/share/datasets/fashion-mnist/``).

In each place ``P`` the files are looked for in ``P/<folder>`` for each of the
set's folder names (``fashion-mnist``; ``mnist``; ``cifar10`` or
``cifar-10-batches-bin``, the folder CIFAR-10's binary archive unpacks to), then
in ``P`` itself. MNIST and Fashion-MNIST have the same file names: keep them in
folders of their own.

Files (a ``.gz`` of an IDX file is read as well):

* Fashion-MNIST and MNIST: ``train-images-idx3-ubyte`` (60,000 images) and
  ``t10k-images-idx3-ubyte`` (10,000), 28 × 28 ``uint8``; the label files that
  come with them are not read (a VAE does not use labels).
* CIFAR-10, binary version: ``data_batch_1.bin`` … ``data_batch_5.bin`` (50,000
  images) and ``test_batch.bin`` (10,000); each record is 1 label byte and 3,072
  pixel bytes, 1,024 per channel (red, green, blue), each 32 × 32 row-major.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaelik.errors import InputError
from vaelik.inference.data.idx import read_idx
from vaelik.inference.data.paths import require_regular_file

__all__ = ["DATA_ENV", "IMAGE_SETS", "SYSTEM_DATA_DIRS", "ImageSet", "find_image_files",
           "read_cifar_batch", "read_image_set"]

#: folders where system packages install data sets, searched last (Debian's
#: ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist/*.gz``)
SYSTEM_DATA_DIRS: tuple[str, ...] = ("/usr/share/datasets",)

#: environment variable naming the folder(s) searched after ``--data-dir``
DATA_ENV = "VAELIK_DATA"

#: bytes of one CIFAR-10 record: the label, then 3 × 32 × 32 pixels
CIFAR_RECORD = 1 + 3 * 32 * 32


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """An IDX file of ``uint8`` images ``(n, H, W)`` as ``(n, 1, H, W)``."""
    x = read_idx(path)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise InputError(f"{path} holds {x.dtype} values of shape {x.shape}; an image file of "
                         "this set holds uint8 images (n, H, W): is it a label file renamed?")
    return x.reshape(x.shape[0], 1, *x.shape[1:])


def read_cifar_batch(path: str | os.PathLike) -> np.ndarray:
    """The images of one CIFAR-10 binary batch, ``uint8`` of shape ``(n, 3, 32, 32)``.

    Each record is 1 label byte and 3,072 pixel bytes (the red, green and blue
    planes, each 32 × 32 row-major); the labels are dropped.
    """
    require_regular_file(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read CIFAR-10 file {path} ({e.strerror or e})") from None
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise InputError(
            f"{path} is not a CIFAR-10 binary batch: {raw.size} bytes is not a whole number of "
            f"{CIFAR_RECORD}-byte records (1 label + 3,072 pixels); it is truncated or of "
            "another version: use the binary version's files again"
        )
    records = raw.reshape(-1, CIFAR_RECORD)
    return np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)


@dataclass(frozen=True)
class ImageSet:
    """A built-in image set: where its files are, what they are called, how they are read.

    Attributes
    ----------
    name : str
        The ``--data`` name.
    folders : tuple of str
        Folder names tried under each place searched.
    train, test : tuple of str
        File names of the official training and test images, concatenated in
        this order (an IDX file may also be ``NAME.gz``).
    read : callable
        ``read(path) -> uint8 array (n, C, H, W)``.
    gz : bool
        Whether a file may also be gzipped (``NAME.gz``).
    get : str
        How to get the files, for the message when they are not found.
    """

    name: str
    folders: tuple[str, ...]
    train: tuple[str, ...]
    test: tuple[str, ...]
    read: Callable[[str | os.PathLike], np.ndarray]
    gz: bool
    get: str

    @property
    def files(self) -> tuple[str, ...]:
        """Every file name, training files first."""
        return self.train + self.test


_IDX_FILES = {"train": ("train-images-idx3-ubyte",), "test": ("t10k-images-idx3-ubyte",)}
_IDX_LIST = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,"
             " t10k-labels-idx1-ubyte.gz")

#: the built-in image sets by ``--data`` name
IMAGE_SETS: dict[str, ImageSet] = {
    "fashion-mnist": ImageSet(
        "fashion-mnist", ("fashion-mnist",), **_IDX_FILES, read=read_idx_images, gz=True,
        get=("install it with `apt-get install dataset-fashion-mnist`, or put its four IDX "
             f"files ({_IDX_LIST}) in a folder and pass --data-dir FOLDER")),
    "mnist": ImageSet(
        "mnist", ("mnist",), **_IDX_FILES, read=read_idx_images, gz=True,
        get=(f"put the four MNIST IDX files ({_IDX_LIST}) in a folder and pass --data-dir "
             "FOLDER (or set $VAELIK_DATA)")),
    "cifar10": ImageSet(
        "cifar10", ("cifar10", "cifar-10-batches-bin"),
        train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), test=("test_batch.bin",),
        read=read_cifar_batch, gz=False,
        get=("unpack CIFAR-10's binary version (cifar-10-binary.tar.gz: data_batch_1.bin … "
             "data_batch_5.bin, test_batch.bin) into a folder and pass --data-dir FOLDER "
             "(or set $VAELIK_DATA)")),
}


def _places(data_dir: str | os.PathLike | None) -> list[tuple[str, str]]:
    """(how the place was given, folder) in search order."""
    if data_dir is not None:
        return [("--data-dir", str(data_dir))]
    env = os.environ.get(DATA_ENV, "")
    places = [(f"${DATA_ENV}", p) for p in env.split(os.pathsep) if p]
    return places + [("system data folder", p) for p in SYSTEM_DATA_DIRS]


def _find_in(folder: Path, spec: ImageSet) -> dict[str, Path]:
    """The set's files present in ``folder`` (a name or its ``.gz``)."""
    found = {}
    for name in spec.files:
        for candidate in (name, name + ".gz") if spec.gz else (name,):
            if os.path.lexists(folder / candidate):
                found[name] = folder / candidate
                break
    return found


def find_image_files(name: str, data_dir: str | os.PathLike | None = None
                     ) -> tuple[Path, list[Path], list[Path]]:
    """Find the files of a built-in image set (the search order is the module's docstring).

    Returns
    -------
    folder : pathlib.Path
        The folder holding them.
    train, test : list of pathlib.Path
        The official training and test files.

    Raises
    ------
    InputError
        Not found (the message says how to get them), found in part (it names
        the missing files), or ``--data-dir`` is not a folder.
    """
    spec = IMAGE_SETS[name]
    if data_dir is not None and not os.path.isdir(data_dir):
        raise InputError(f"--data-dir {data_dir} is not a folder; give the folder holding "
                         f"the {name} files")
    looked = []
    for _, place in _places(data_dir):
        for folder in [Path(place, sub) for sub in spec.folders] + [Path(place)]:
            looked.append(str(folder))
            found = _find_in(folder, spec) if folder.is_dir() else {}
            if not found:
                continue
            missing = [f for f in spec.files if f not in found]
            if missing:
                suffix = "(.gz)" if spec.gz else ""
                raise InputError(
                    f"{folder} holds only part of {name}: it lacks "
                    f"{', '.join(m + suffix for m in missing)}; add them (or point --data-dir "
                    "elsewhere)")
            return folder, [found[f] for f in spec.train], [found[f] for f in spec.test]
    where = ", ".join(looked)
    if data_dir is not None:
        raise InputError(f"--data-dir {data_dir} holds no {name} files (looked in {where}); "
                         f"{spec.get}; vaelik downloads nothing")
    raise InputError(f"{name} not found (looked in {where}); {spec.get}; vaelik downloads "
                     "nothing")


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def read_image_set(name: str, data_dir: str | os.PathLike | None = None
                   ) -> tuple[np.ndarray, np.ndarray, Path]:
    """The official training and test images of a built-in image set.

    Returns
    -------
    train, test : numpy.ndarray
        ``uint8`` of shape ``(n_train, C, H, W)`` and ``(n_test, C, H, W)``
        (Fashion-MNIST: 60,000 and 10,000 of ``(1, 28, 28)``).
    folder : pathlib.Path
        Where the files were found.
    """
    spec = IMAGE_SETS[name]
    folder, train_files, test_files = find_image_files(name, data_dir)
    train = [spec.read(p) for p in train_files]
    test = [spec.read(p) for p in test_files]
    shapes = {a.shape[1:] for a in train + test}
    if len(shapes) != 1:
        raise InputError(f"the {name} files in {folder} hold images of different shapes "
                         f"({', '.join(str(s) for s in sorted(shapes))}); use the set's own files")
    return _join(train), _join(test), folder
