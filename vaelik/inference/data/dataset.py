"""The :class:`Dataset` every loader returns: train, validation and test rows and their description."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Dataset"]


@dataclass
class Dataset:
    r"""A data set split into train, validation and test.

    Attributes
    ----------
    name : str
        Built-in name or the file path.
    train, test : torch.Tensor
        Float32 tensors of shape ``(n_train, d)`` and ``(n_test, d)``; an image
        is one row, flattened channel-major (``d = C · H · W``).
    image_shape : tuple of int or None
        ``(C, H, W)`` of one image (C = 1 for grey levels, 3 for colour); a row
        reshapes to it. None when the rows are not images.
    binary : bool
        Whether every value is 0 or 1.
    scaling : str
        How raw values were mapped (documented in the run's config).
    params : dict
        Generating parameters of synthetic sets (W, μ are not stored; the seed
        is), a threshold, and the subset options when a subset was taken.
    val : torch.Tensor
        The validation split, float32 ``(n_val, d)``; ``n_val = 0`` when there is none.
    levels : int or None
        Number of grey levels L of discrete data, whose values are
        :math:`k / (L - 1)` for :math:`k = 0, \dots, L - 1` (256 for 8-bit
        images and ``uint8`` files, 17 for the bundled digits, 2 for binary
        digits); None for continuous data (synthetic sets, floating-point files).
    split : str
        ``"random"`` (rows split by the seed) or ``"official"`` (the data set's
        own test rows; the validation split is carved from its training rows).
    source : str or None
        The folder the files of a built-in image set were read from.
    dequantised : int or None
        L when the splits were uniformly dequantised from L grey levels
        (:mod:`vaelik.inference.data.dequantise`: values :math:`(k + u)/L`); None otherwise.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    image_shape: tuple[int, ...] | None = None
    binary: bool = False
    scaling: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    val: torch.Tensor | None = None
    levels: int | None = None
    split: str = "random"
    source: str | None = None
    dequantised: int | None = None

    def __post_init__(self) -> None:
        if self.val is None:
            self.val = self.train[:0]
        if self.image_shape is not None and math.prod(self.image_shape) != self.dim:
            raise ValueError(f"image_shape {self.image_shape} does not hold the {self.dim} "
                             "values of a row")

    @property
    def dim(self) -> int:
        """Number of values per row, ``d``."""
        return int(self.train.shape[1])

    def info(self) -> dict[str, Any]:
        """JSON-ready description written to ``config.json`` (its ``data_info``)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "levels": self.levels,
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "n_test": int(self.test.shape[0]),
            "split": self.split,
            "binary": self.binary,
            "scaling": self.scaling,
            "params": self.params,
            "source": self.source,
            "dequantised": self.dequantised,
        }
