"""The IDX format of MNIST and Fashion-MNIST, raw or gzipped.

An IDX file is a 4-byte magic number ``0 0 T N`` (T: the element type, N: the
number of dimensions), N big-endian uint32 sizes, then the elements in
row-major order, big-endian. Whether a file is IDX is decided by that magic
number, or by a name ending like an IDX file's (``-ubyte``, ``-idx3-ubyte.gz``,
``.idx``), never by "idx" somewhere in the path.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib

import numpy as np

from vaelik.errors import InputError
from vaelik.inference.data.paths import require_regular_file

__all__ = ["IDX_TYPES", "is_idx_file", "looks_like_idx_name", "read_idx"]

#: element type code (the magic number's third byte) to its big-endian numpy dtype
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: file names of IDX files: ``train-images-idx3-ubyte``, ``v-idx2-float``, ``x.idx``, each
#: optionally ``.gz``
_IDX_NAME = re.compile(r"(-idx\d+-[a-z]+|-ubyte|\.idx\d*)(\.gz)?$")

_READ_ERRORS = (OSError, EOFError, zlib.error)


def looks_like_idx_name(path: str | os.PathLike) -> bool:
    """Whether the file name ends like an IDX file's.

    >>> looks_like_idx_name("train-images-idx3-ubyte.gz"), looks_like_idx_name("my-idx-data.npy")
    (True, False)
    """
    return bool(_IDX_NAME.search(os.path.basename(str(path)).lower()))


def _opener(path: str | os.PathLike):
    return gzip.open if str(path).lower().endswith(".gz") else open


def _has_magic(head: bytes) -> bool:
    return len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_TYPES \
        and head[3] >= 1


def is_idx_file(path: str | os.PathLike) -> bool:
    """Whether the file (gunzipped if its name ends in ``.gz``) starts with an IDX magic number.

    Unreadable files (a damaged gzip stream) are not IDX files.
    """
    require_regular_file(path)
    try:
        with _opener(path)(path, "rb") as f:
            return _has_magic(f.read(4))
    except _READ_ERRORS:
        return False


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its own shape and type.

    Parameters
    ----------
    path : str or os.PathLike
        The file; gunzipped when its name ends in ``.gz``.

    Returns
    -------
    numpy.ndarray
        Shape from the header (``(60000, 28, 28)`` for MNIST's training
        images), dtype from the magic number (``>u1`` for ``ubyte``).

    Raises
    ------
    InputError
        Not a regular file, unreadable, bad magic number, or truncated.
    """
    require_regular_file(path)
    try:
        with _opener(path)(path, "rb") as f:
            raw = f.read()
    except _READ_ERRORS as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(
            f"cannot read IDX file {path} ({reason}); check that it is a complete, "
            "uncompressed or gzipped IDX file"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise InputError(
            f"{path} is not an IDX file (bad magic number); give a .npy, .npz or MNIST-format "
            "IDX file"
        )
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(
            f"truncated IDX file {path}: the header is incomplete; copy or download it again"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    expected = count * dtype.itemsize
    if len(raw) - header < expected:
        raise InputError(
            f"truncated IDX file {path}: header promises shape {shape} "
            f"({expected} bytes of data) but only {len(raw) - header} bytes follow; copy or "
            "download it again"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
