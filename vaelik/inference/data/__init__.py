"""Data sets: the bundled digits, synthetic sets with a known truth, real image sets, user files.

Nothing is downloaded. Every loader returns a :class:`Dataset` of float32
tensors of shape ``(n, d)`` (images are flattened channel-major, their
``(C, H, W)`` kept in ``image_shape``), split deterministically from the seed
(:mod:`~vaelik.inference.data.load`). One module per source:

* :mod:`~vaelik.inference.data.builtin`: ``BUILTIN_DATA`` (names and options),
  the digits and the synthetic sets, the subset options;
* :mod:`~vaelik.inference.data.images`: Fashion-MNIST, MNIST and CIFAR-10 from
  their files (``--data-dir``, ``$VAELIK_DATA``, Debian's ``/usr/share/datasets``);
* :mod:`~vaelik.inference.data.files` and :mod:`~vaelik.inference.data.idx`: a
  user's ``.npy``/``.npz``/IDX file;
* :mod:`~vaelik.inference.data.arrays`: checks, scaling to [0, 1] with the
  number of grey levels, image layout, subsets;
* :mod:`~vaelik.inference.data.dequantise`: grey levels spread uniformly over
  their bins, for a continuous density scored as a bound on their mass.
"""

from vaelik.inference.data.builtin import BUILTIN_DATA
from vaelik.inference.data.dataset import Dataset
from vaelik.inference.data.dequantise import dequantise_dataset, needs_dequantisation
from vaelik.inference.data.idx import read_idx
from vaelik.inference.data.images import (
    DATA_ENV,
    IMAGE_SETS,
    SYSTEM_DATA_DIRS,
    find_image_files,
    read_cifar_batch,
)
from vaelik.inference.data.load import load_data

__all__ = [
    "BUILTIN_DATA",
    "DATA_ENV",
    "IMAGE_SETS",
    "SYSTEM_DATA_DIRS",
    "Dataset",
    "dequantise_dataset",
    "find_image_files",
    "load_data",
    "needs_dequantisation",
    "read_cifar_batch",
    "read_idx",
]
