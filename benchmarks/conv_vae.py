"""The conv VAE cells of ``benchmarks/run.py``: a hand-written PyTorch conv VAE and its data.

The architecture is vaelik's ``--network conv`` (``vaelik/models/networks/conv.py``)
written out by hand: ``L`` blocks of ``Conv2d(4×4, stride 2, padding 1)`` + ReLU,
a linear layer to ``(loc, raw)``; a linear layer + ReLU back to the deepest
feature map, ``L − 1`` blocks of ``ConvTranspose2d(4×4, stride 2, padding 1)`` +
ReLU and a last transposed convolution to the image (``L = 2`` for 28 × 28,
``L = 3`` for 32 × 32; the deepest block has ``CONV_HIDDEN`` channels, each
block before it half). The likelihood and the step are those of the MLP cells'
``HandVAE``: Normal with a learned global σ, analytic KL, ``N/B`` scaling, one
Adam with σ at ``--scale-lr-factor`` × lr.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: channels of the deepest block (``--hidden-dim`` of ``--network conv``) and latent size
CONV_HIDDEN, CONV_LATENT = 64, 20

#: (C, H, W) of the conv cells: MNIST-like and CIFAR-like
CONV_SHAPES = ((1, 28, 28), (3, 32, 32))


def make_images(shape: tuple[int, int, int], n: int = 5000) -> torch.Tensor:
    """``n`` synthetic images in [0, 1] of ``shape``, flattened (C, H, W) row-major.

    Smooth low-rank structure (16 latent factors through a sigmoid), as the MLP
    cells' synthetic 784-d data; the step time does not depend on the values.
    """
    g = torch.Generator().manual_seed(0)
    d = math.prod(shape)
    z = torch.randn(n, 16, generator=g)
    w = torch.randn(16, d, generator=g) / 4
    return torch.sigmoid(z @ w - 2.0)


def _blocks(h: int, w: int) -> int:
    blocks = 0
    while blocks < 3 and h % 2 == 0 and w % 2 == 0 and min(h, w) >= 4:
        h, w, blocks = h // 2, w // 2, blocks + 1
    return blocks


class HandConvVAE:
    """The conv VAE and its step written directly in PyTorch (no Pyro, no vaelik model)."""

    def __init__(self, x: torch.Tensor, shape: tuple[int, int, int], batch: int, *, lr: float,
                 scale_lr: float, init_scale: float, min_scale: float, seed: int = 0) -> None:
        torch.manual_seed(seed)
        c, h, w = shape
        blocks = _blocks(h, w)
        chans = [max(1, CONV_HIDDEN >> (blocks - 1 - i)) for i in range(blocks)]
        enc: list[nn.Module] = []
        prev = c
        for out in chans:
            enc += [nn.Conv2d(prev, out, 4, 2, 1), nn.ReLU()]
            prev = out
        hs, ws = h >> blocks, w >> blocks
        enc += [nn.Flatten(), nn.Linear(chans[-1] * hs * ws, 2 * CONV_LATENT)]
        self.enc = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Linear(CONV_LATENT, chans[-1] * hs * ws), nn.ReLU(),
                                nn.Unflatten(1, (chans[-1], hs, ws))]
        for i in range(blocks - 1, 0, -1):
            dec += [nn.ConvTranspose2d(chans[i], chans[i - 1], 4, 2, 1), nn.ReLU()]
        dec += [nn.ConvTranspose2d(chans[0], c, 4, 2, 1), nn.Flatten()]
        self.dec = nn.Sequential(*dec)
        self.shape, self.min_scale = shape, min_scale
        self.raw = torch.tensor(math.log(init_scale - min_scale), requires_grad=True)
        nets = [*self.enc.parameters(), *self.dec.parameters()]
        self.opt = torch.optim.Adam([{"params": nets}, {"params": [self.raw], "lr": scale_lr}],
                                    lr=lr)
        self.x, self.n, self.batch = x, x.shape[0], batch

    def loss(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.x[idx]
        h = self.enc(x.reshape(-1, *self.shape))
        loc = h[:, :CONV_LATENT]
        sd = torch.nn.functional.softplus(h[:, CONV_LATENT:]) + 1e-5
        z = loc + sd * torch.randn_like(loc)
        mean = self.dec(z)
        sigma = self.min_scale + self.raw.exp()
        log_lik = (-0.5 * ((x - mean) / sigma) ** 2 - sigma.log()
                   - 0.5 * math.log(2 * math.pi)).sum(-1)
        kl = 0.5 * (loc**2 + sd**2 - 1 - 2 * sd.log()).sum(-1)
        return -(log_lik - kl).sum() * (self.n / x.shape[0])

    def scope(self):
        import contextlib

        return contextlib.nullcontext()

    def run(self, perm: torch.Tensor, start: int, count: int) -> None:
        for step in range(start, start + count):
            idx = perm[step * self.batch : (step + 1) * self.batch]
            loss = self.loss(idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
