r"""Encoder and decoder networks, and the registry :data:`NETWORKS` of their builders.

A network is a plain ``torch.nn`` pair (no Pyro inside) that fulfils this
**shape contract**, where ``d = prod(data_shape)``, ``k = latent_dim`` and
``m = out_multiplier`` (the likelihood's ``output_multiplier()``):

=============  =====================================  ======================================
network        input                                  output
=============  =====================================  ======================================
encoder        ``x`` of shape ``(B, d)`` (flat rows)  ``(loc, scale)``, each ``(B, k)``,
                                                      ``scale > 0``
decoder        ``z`` of shape ``(..., k)`` (any       ``(..., m * d)`` raw outputs (a mean,
               leading batch dims: particles, rows)   logits, a mean and a raw scale …)
=============  =====================================  ======================================

The model reads the encoder's ``loc`` and ``scale`` as the parameters of
:math:`q(z \mid x)` (the ``delta`` guide uses ``loc`` only) and hands the
decoder's raw output to the likelihood. A network is a module with one
function of the same signature for every network::

    build(data_shape: tuple[int, ...], latent_dim: int, out_multiplier: int,
          *, hidden_dim: int, **options) -> tuple[nn.Module, nn.Module]

returning ``(encoder, decoder)``; ``data_shape`` is the shape of one example
(``(C, H, W)`` or ``(H, W)`` for images, e.g. ``(1, 8, 8)`` for the digits;
``(d,)`` for a table), so that a convolutional network can reshape the flat
rows (row-major) into images; ``hidden_dim`` is the width knob of
``--hidden-dim`` (a network may read it as it likes). The networks offered by
``--network``:

========  ==========================================================================
name      networks
========  ==========================================================================
``mlp``   one hidden ReLU layer of ``hidden_dim`` units (:mod:`.mlp`); any data
``conv``  strided convolutions, ``hidden_dim`` channels in the deepest block
          (:mod:`.conv`); images whose H and W are multiples of 4, at least 8
========  ==========================================================================

Adding a network is one file with a ``build`` function and one entry in
:data:`NETWORKS`::

    NETWORKS["resnet"] = resnet.build
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vaelik.models.networks import conv, mlp
from vaelik.models.networks.mlp import Decoder, Encoder

__all__ = ["NETWORKS", "NetworkBuilder", "Encoder", "Decoder"]

#: ``build(data_shape, latent_dim, out_multiplier, *, hidden_dim, **options) -> (encoder, decoder)``
NetworkBuilder = Callable[..., tuple[nn.Module, nn.Module]]

#: Network builders by name; the keys are the choices (and the error text) of a model's network.
NETWORKS: dict[str, NetworkBuilder] = {"mlp": mlp.build, "conv": conv.build}
