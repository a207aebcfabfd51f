r"""Uniform dequantisation: a continuous density on grey levels, scored as a bound on their mass.

Data on L grey levels take the values :math:`x = k/(L-1)`, :math:`k = 0, \dots, L-1`.
A density on [0, 1] is not a probability of such data (it can spike on a value
that repeats). Dequantising spreads each value uniformly over its own bin of
width :math:`1/L` inside [0, 1],

.. math::
    \tilde x = \frac{k + u}{L}, \qquad u \sim \mathcal U(0, 1)^d,

and a density :math:`\tilde p` fitted to :math:`\tilde x` defines the discrete
model :math:`P(x) = \int_{\text{bin}(x)} \tilde p`, for which (Jensen)

.. math::
    \log P(x) \ge \mathbb E_u\big[\log \tilde p(\tilde x)\big] - d \log L ,

so :math:`-(\log \tilde p(\tilde x) - d \log L) / (d \ln 2)` bits/dim is an upper
bound on the discrete model's bits/dim (a lower bound on its log P(x)), on the
same scale as a discretised family's exact mass. Each split is dequantised with
**one** draw of u (a generator seeded by the configuration's seed and the split),
so training, resume and a later ``vaelik evaluate`` see the same numbers; the
reported number is that one draw's value of the bound's expectation.

:func:`dequantise_dataset` is called by :func:`vaelik.inference.run.build` when
``TrainConfig.dequantise`` is ``auto``, the data record their ``levels`` and the
family is not discrete (:func:`needs_dequantisation`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from vaelik.inference.data.dataset import Dataset

__all__ = ["DEQUANTISE_STREAM", "bits_correction", "dequantise", "dequantise_dataset",
           "needs_dequantisation"]

#: first word of the generators' seed sequence: the dequantisation noise is drawn from
#: ``numpy.random.default_rng([DEQUANTISE_STREAM, seed, split])``, apart from every other stream
DEQUANTISE_STREAM = 0x6465715F  # "deq_"

#: the split numbers in the seed sequence
_SPLITS = {"train": 0, "val": 1, "test": 2}


def needs_dequantisation(mode: str, levels: int | None, discrete: bool) -> bool:
    """Whether a family is trained on dequantised data.

    Parameters
    ----------
    mode : {"auto", "none"}
        ``TrainConfig.dequantise``.
    levels : int or None
        The data's number of grey levels (None: continuous data).
    discrete : bool
        The family's fact ``discrete`` (its log p is already a log mass).

    Examples
    --------
    >>> needs_dequantisation("auto", 17, discrete=False), needs_dequantisation("auto", 17, True)
    (True, False)
    >>> needs_dequantisation("auto", None, False), needs_dequantisation("none", 256, False)
    (False, False)
    """
    return mode == "auto" and levels is not None and not discrete


def dequantise(x: torch.Tensor, levels: int, generator: np.random.Generator) -> torch.Tensor:
    r"""Rows on ``levels`` grey levels :math:`k/(L-1)` moved to :math:`(k + u)/L`, u ~ U(0, 1).

    Parameters
    ----------
    x : torch.Tensor
        Float rows ``(n, d)`` whose values are :math:`k/(L-1)`.
    levels : int
        L >= 2.
    generator : numpy.random.Generator
        Source of u (one value per element, drawn in row-major order).

    Returns
    -------
    torch.Tensor
        Same shape and dtype; every value in :math:`[k/L, (k+1)/L]` ⊂ [0, 1] (the
        upper edge only where float32 rounds up).

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.5, 1.0]])
    >>> y = dequantise(x, 3, np.random.default_rng(0))
    >>> bool(((y * 3).floor() == torch.tensor([[0.0, 1.0, 2.0]])).all())
    True
    """
    k = torch.round(x.double() * (levels - 1))
    u = torch.from_numpy(generator.random(tuple(x.shape)))
    return ((k + u) / levels).to(x.dtype).contiguous()


def dequantise_dataset(data: Dataset, seed: int) -> Dataset:
    """``data`` with its train, validation and test splits dequantised (one draw each).

    Split ``s`` draws from ``numpy.random.default_rng([DEQUANTISE_STREAM, seed, s])``
    (train 0, validation 1, test 2), so the same seed gives the same numbers in
    :func:`~vaelik.inference.fit`, :func:`~vaelik.inference.resume` and
    :func:`~vaelik.inference.evaluate_run`. The result records
    ``dequantised = levels`` (its ``info()`` too); ``levels`` is kept.

    Raises
    ------
    ValueError
        ``data`` records no levels, or is dequantised already.
    """
    if data.levels is None or data.dequantised is not None:
        raise ValueError("dequantise_dataset needs data on grey levels that are not dequantised yet")
    split = {name: dequantise(getattr(data, name), data.levels,
                              np.random.default_rng([DEQUANTISE_STREAM, int(seed), number]))
             for name, number in _SPLITS.items()}
    return dataclasses.replace(data, **split, binary=False, dequantised=data.levels)


def bits_correction(levels: int | None) -> float:
    r"""The nats per dimension added to a dequantised density's log p: :math:`-\log L` (0 for None).

    ``log P(x) ≥ log p̃(x̃) + d · bits_correction(L)``.

    Examples
    --------
    >>> bits_correction(None), round(bits_correction(256) / math.log(2), 12)
    (0.0, -8.0)
    """
    return 0.0 if levels is None else -math.log(levels)
