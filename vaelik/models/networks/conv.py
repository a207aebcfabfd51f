r"""The convolutional encoder and decoder: strided convolutions, as in the σ-VAE code.

Registered as ``"conv"`` in :data:`vaelik.models.networks.NETWORKS` (``--network conv``);
it fulfils the package's shape contract on flat rows, reading each row of
``d = C·H·W`` values as an image of shape ``(C, H, W)`` in row-major order
(pixel ``(c, h, w)`` is value ``c·H·W + h·W + w``: the layout of the data sets,
of a ``(H, W)`` image flattened by numpy, and of the planes of a CIFAR-10 record).

Architecture, for ``L`` stride-2 blocks (see :func:`num_blocks`) with channels
:math:`c_1 < \dots < c_L` (``c_L = hidden_dim``, each block before it half the
next, at least 1):

* encoder: ``L × [Conv2d(4×4, stride 2, padding 1) + ReLU]`` halving H and W each
  time, flatten, then one linear layer to ``(loc, raw)`` of :math:`q(z \mid x)`
  (``scale = softplus(raw) + 1e-5``, as the MLP);
* decoder: a linear layer and ReLU to :math:`c_L × H/2^L × W/2^L`, then
  ``L - 1 × [ConvTranspose2d(4×4, stride 2, padding 1) + ReLU]`` and a last
  transposed convolution to ``m·C`` channels at full size, no activation.

The decoder's ``m·C`` output channels are ``m`` images of ``C`` channels, one per
raw parameter the likelihood asks for (``m = likelihood.output_multiplier()``):
flattened they give ``(..., m·d)`` = ``[first parameter's d values | second's d
values]``, the layout the likelihoods slice (``out[..., :d]`` the location,
``out[..., d:]`` a predicted raw scale), exactly as the MLP's output.

Accepted image sizes: H and W multiples of 4 and at least 8, any number of
channels C (``(1, 8, 8)`` digits, ``(1, 28, 28)`` MNIST, ``(3, 32, 32)`` CIFAR-10);
a 2-tuple ``(H, W)`` means ``C = 1``. Data without an image shape (a table,
``(d,)``) and other sizes are refused with one line.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaelik.errors import InputError

__all__ = ["ConvEncoder", "ConvDecoder", "build", "image_shape", "num_blocks", "MAX_BLOCKS"]

#: the most stride-2 blocks (32 × 32 ends at 4 × 4 after 3)
MAX_BLOCKS = 3

_KERNEL, _STRIDE, _PAD = 4, 2, 1


def image_shape(data_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of one example from the data's ``image_shape``.

    Parameters
    ----------
    data_shape : tuple of int
        ``(C, H, W)``, or ``(H, W)`` meaning one channel.

    Raises
    ------
    InputError
        If the data are not images (one dimension, e.g. ``(d,)``) or their size
        is not accepted (H and W multiples of 4, at least 8).

    Examples
    --------
    >>> image_shape((8, 8)), image_shape((3, 32, 32))
    ((1, 8, 8), (3, 32, 32))
    """
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise InputError(f"network conv needs images, but the data have shape {shape} per "
                         "example (no image shape); use --network mlp")
    c, h, w = shape
    if c < 1 or h < 8 or w < 8 or h % 4 or w % 4:
        raise InputError(f"network conv takes images whose height and width are multiples of "
                         f"4 and at least 8 (e.g. 8x8, 28x28, 32x32), got (C, H, W) = {shape}; "
                         "use --network mlp")
    return c, h, w


def num_blocks(height: int, width: int) -> int:
    """Number L of stride-2 blocks: halvings of H and W while both stay even, at most 3.

    Each halving needs both sizes even; the result stays at least 2. So
    8 × 8 → 4 → 2 (L = 2), 28 × 28 → 14 → 7 (L = 2), 32 × 32 → 16 → 8 → 4 (L = 3).

    Examples
    --------
    >>> num_blocks(8, 8), num_blocks(28, 28), num_blocks(32, 32)
    (2, 2, 3)
    """
    blocks = 0
    while blocks < MAX_BLOCKS and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 4:
        height, width, blocks = height // 2, width // 2, blocks + 1
    return blocks


def _channels(hidden_dim: int, blocks: int) -> list[int]:
    """``c_1, ..., c_L``: the last is ``hidden_dim``, each one before it half the next."""
    return [max(1, hidden_dim >> (blocks - 1 - i)) for i in range(blocks)]


class ConvEncoder(nn.Module):
    r"""Strided-convolution encoder :math:`x \mapsto (\mu(x), s(x))`.

    Parameters
    ----------
    shape : tuple of int
        ``(C, H, W)`` of one image (checked by :func:`image_shape`).
    latent_dim : int
        Size k of z.
    hidden_dim : int
        Channels of the deepest block.

    Returns (from ``forward``)
    -------
    loc, scale : torch.Tensor
        Each of shape ``(B, latent_dim)`` for ``x`` of shape ``(B, C·H·W)``;
        ``scale = softplus(raw) + 1e-5``.
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.shape = image_shape(shape)
        c, h, w = self.shape
        blocks = num_blocks(h, w)
        layers: list[nn.Module] = []
        for out in _channels(hidden_dim, blocks):
            layers += [nn.Conv2d(c, out, _KERNEL, _STRIDE, _PAD), nn.ReLU()]
            c = out
        self.body = nn.Sequential(*layers)
        # loc and the raw scale come from one fused layer, as in the MLP
        self.head = nn.Linear(c * (h >> blocks) * (w >> blocks), 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(loc, scale)`` of :math:`q(z \mid x)` for flat rows ``x`` of shape ``(..., C·H·W)``."""
        lead = x.shape[:-1]
        h = self.body(x.reshape(-1, *self.shape))
        h = self.head(h.flatten(1)).reshape(*lead, -1)
        loc, raw = h[..., : self.latent_dim], h[..., self.latent_dim :]
        return loc, F.softplus(raw) + 1e-5


class ConvDecoder(nn.Module):
    r"""Transposed-convolution decoder :math:`z \mapsto` raw parameters of :math:`p(x \mid z)`.

    Parameters
    ----------
    shape : tuple of int
        ``(C, H, W)`` of one image.
    latent_dim : int
        Size k of z.
    out_multiplier : int
        m, the raw values per data value the likelihood asks for.
    hidden_dim : int
        Channels of the deepest block.

    Returns (from ``forward``)
    -------
    torch.Tensor
        Shape ``(..., m·C·H·W)`` for ``z`` of shape ``(..., k)``: the ``m`` parameter
        images one after the other, each flattened as the data.
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, out_multiplier: int,
                 hidden_dim: int) -> None:
        super().__init__()
        self.shape = image_shape(shape)
        c, h, w = self.shape
        blocks = num_blocks(h, w)
        channels = _channels(hidden_dim, blocks)
        self.start = (channels[-1], h >> blocks, w >> blocks)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), nn.ReLU())
        layers: list[nn.Module] = []
        for i in range(blocks - 1, 0, -1):
            layers += [nn.ConvTranspose2d(channels[i], channels[i - 1], _KERNEL, _STRIDE, _PAD),
                       nn.ReLU()]
        layers.append(nn.ConvTranspose2d(channels[0], out_multiplier * c, _KERNEL, _STRIDE, _PAD))
        self.body = nn.Sequential(*layers)
        # the transposed convolution of index i makes c_{i-1} channels at (H/2^i, W/2^i)
        maps = [math.prod(self.start)] + [channels[i - 1] * (h >> i) * (w >> i) for i in range(blocks - 1, 0, -1)]
        #: floats of the widest tensor made for one z (a feature map, or the output)
        self.floats_per_sample = max(*maps, out_multiplier * c * h * w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Raw outputs of shape ``(..., m·C·H·W)`` for ``z`` of shape ``(..., latent_dim)``."""
        lead = z.shape[:-1]
        h = self.fc(z.reshape(-1, z.shape[-1])).reshape(-1, *self.start)
        return self.body(h).reshape(*lead, -1)  # (m·C, H, W) per row, flattened row-major


def build(
    data_shape: tuple[int, ...], latent_dim: int, out_multiplier: int, *, hidden_dim: int = 256
) -> tuple[ConvEncoder, ConvDecoder]:
    """Convolutional encoder and decoder for images of ``data_shape``.

    Parameters
    ----------
    data_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)`` of one image; H and W multiples of 4, at least 8.
    latent_dim : int
        Size k of z.
    out_multiplier : int
        Raw decoder outputs per data value (``likelihood.output_multiplier()``).
    hidden_dim : int
        Channels of the deepest block (``--hidden-dim``); each block before it has
        half as many (256 on 32 × 32: 64, 128, 256 as in the σ-VAE code's first three).

    Raises
    ------
    InputError
        Data that are not images of an accepted size, or ``hidden_dim < 1``.

    Examples
    --------
    >>> enc, dec = build((1, 28, 28), latent_dim=2, out_multiplier=2, hidden_dim=8)
    >>> [t.shape for t in enc(torch.zeros(5, 784))], dec(torch.zeros(3, 5, 2)).shape
    ([torch.Size([5, 2]), torch.Size([5, 2])], torch.Size([3, 5, 1568]))
    """
    if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
        raise InputError(f"network conv needs hidden-dim >= 1 (the channels of its deepest "
                         f"block), got {hidden_dim!r}")
    shape = image_shape(data_shape)
    # the encoder is created first: the initial weights depend on this order (one seed)
    encoder = ConvEncoder(shape, latent_dim, hidden_dim)
    decoder = ConvDecoder(shape, latent_dim, out_multiplier, hidden_dim)
    return encoder, decoder
