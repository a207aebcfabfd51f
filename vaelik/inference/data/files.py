"""A user's data file: ``.npy``, ``.npz`` (one array, or the one named by ``--data-key``) or IDX.

The format is decided by the name's suffix (``.npy``, ``.npz``) and, for any
other file, by the IDX magic number (:mod:`vaelik.inference.data.idx`). Only
regular files are opened; nothing is unpickled.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

from vaelik.errors import InputError
from vaelik.inference.data.idx import is_idx_file, looks_like_idx_name, read_idx
from vaelik.inference.data.paths import require_regular_file

__all__ = ["read_data_file"]


def _read_npz(path: str, f: BinaryIO, key: str | None) -> np.ndarray:
    with np.load(f, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise InputError(
                    f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    "choose one with --data-key NAME"
                )
            key = keys[0]
        if key not in keys:
            raise InputError(
                f"{path} has no array {key!r}; it has: {', '.join(keys) or 'none'}; "
                "choose one with --data-key NAME"
            )
        value = archive[key]
        if not isinstance(value, np.ndarray):  # a member that is not a .npy (numpy returns its bytes)
            raise InputError(
                f"cannot read data file {path}: its member {key!r} is not a .npy array; "
                "save the arrays with numpy.savez"
            )
        return value


def _read_numpy(path: str, key: str | None, kind: str) -> np.ndarray:
    try:
        # the file is opened here so that it is closed whatever numpy raises
        with open(path, "rb") as f:
            if kind == ".npy":
                return np.load(f, allow_pickle=False)
            return _read_npz(path, f, key)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        what = "the .npz archive" if kind == ".npz" else "the .npy file"
        raise InputError(
            f"cannot read data file {path}: {what} is damaged ({e or type(e).__name__}"
            "); it is truncated or corrupted: copy or save it again"
        ) from None
    except (OSError, ValueError) as e:
        text = str(e)
        if "pickle" in text:  # numpy's fallback for a non-.npy file, or an object array
            raise InputError(
                f"cannot read data file {path}: not a {kind} file of numbers (it is damaged, "
                f"of another format, or holds Python objects, which vaelik never unpickles); "
                "save a numeric array with numpy.save / numpy.savez"
            ) from None
        first = text.splitlines()[0] if text else type(e).__name__
        raise InputError(
            f"cannot read data file {path}: {first}; check that it is a complete {kind} file"
        ) from None


def read_data_file(path: str, key: str | None, builtin_names: list[str]) -> np.ndarray:
    """Read a user's data file into a numpy array (its own shape and dtype).

    Parameters
    ----------
    path : str
        A ``.npy``, ``.npz`` or IDX file (raw or gzipped).
    key : str, optional
        Array name inside a ``.npz`` with several arrays.
    builtin_names : list of str
        The built-in data names, listed when the file does not exist.

    Raises
    ------
    InputError
        Missing, a folder or another non-regular file (a FIFO), unreadable,
        damaged (a truncated or CRC-damaged ``.npz``), or of an unsupported format.
    """
    if not os.path.lexists(path):
        raise InputError(f"data file {path} does not exist (built-in data: "
                         f"{', '.join(builtin_names)})")
    if os.path.isdir(path):
        raise InputError(f"data path {path} is a folder; give a .npy, .npz or IDX file")
    require_regular_file(path)
    lower = path.lower()
    for kind in (".npy", ".npz"):
        if lower.endswith(kind):
            return _read_numpy(path, key, kind)
    if looks_like_idx_name(path) or is_idx_file(path):
        return read_idx(path)
    hint = ""
    if lower.endswith((".csv", ".txt", ".tsv")):
        hint = ("; convert a text table once with "
                "numpy.save('data.npy', numpy.loadtxt('data.csv', delimiter=','))")
    raise InputError(
        f"unsupported data file {path}: use .npy, .npz or an IDX file (*-idx*-ubyte, raw or "
        f".gz, or any file starting with the IDX magic number){hint}")
